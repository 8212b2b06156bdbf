"""Definitions and state-file helpers shared by the objects/apply/workflow tests."""

from __future__ import annotations

from store_support import execute_sql, open_rows, table_names

NOW = "2027-03-01T09:00:00Z"

BASE_YAML = """\
kind: Segment
name: vips
description: Customers in the VIP group
match: all
rules:
  - {group: vip}
---
kind: Channel
name: mail
type: outbox
---
kind: Campaign
name: spring-sale
code: SPR-27
timezone: Europe/Paris
closes_at: "2027-06-30T23:59"
channel: mail
message_type: promotional
audience: {segment: vips}
message:
  subject: "Hello {{ first_name }}"
  body: "Spring is here."
type: one-off
schedule:
  queue: immediately
  send: immediately
stages:
  - name: teaser
    controlled_by_plan: true
  - name: main
    controlled_by_plan: true
---
kind: Plan
name: spring-launch
transition: completed
schedule:
  type: manual
stages:
  - {campaign: spring-sale, stage: teaser}
  - {campaign: spring-sale, stage: main}
---
kind: Scenario
name: onboarding
reentry: once
launch:
  type: event
  event: signed_up
steps:
  - id: welcome
    send: {channel: mail, subject: "Welcome", body: "Hi there"}
"""

DEFINITION_TABLES = ("objects", "object_versions", "history")


def table_dump(state, tables=None) -> dict[str, list[tuple]]:
    """Every row of the given tables (default: all), in a stable order (either store)."""
    with open_rows(state) as rows:  # one connection for every table
        names = tables or table_names(state, rows)
        return {t: sorted((tuple(r.values()) for r in rows(f"SELECT * FROM {t}")), key=repr)
                for t in names}


def execute(state, sql: str, params=()) -> None:
    execute_sql(state, sql, params)
