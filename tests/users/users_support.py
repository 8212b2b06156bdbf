"""Shared helpers of the users tests: the clock, the audience, and a campaign definition."""

from __future__ import annotations

T0 = "2027-03-01T09:00:00Z"

CONTACTS = """id,email,groups
v1,v1@example.com,vip
v2,v2@example.com,vip;fr
s1,s1@example.com,staff
n1,n1@example.com,
n2,n2@example.com,fr
"""


def campaign_yaml(name: str = "spring", *, message_type: str | None = "promotional",
                  channel: str | None = None) -> str:
    lines = [
        "kind: Campaign",
        f"name: {name}",
        "timezone: UTC",
        "closes_at: 2027-06-30T23:59",
        "type: one-off",
        'message: {subject: "Hi {{ id }}", body: "Hello"}',
        "audience: {all: true}",
        "schedule: {queue: immediately, send: immediately}",
    ]
    if message_type:
        lines.append(f"message_type: {message_type}")
    if channel:
        lines.append(f"channel: {channel}")
    return "\n".join(lines) + "\n"
