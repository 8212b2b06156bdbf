"""Shared helpers of the why tests: the clock, the audience, a campaign definition."""

from __future__ import annotations

T0 = "2027-03-01T09:00:00Z"

CONTACTS = """id,email,groups,opt_out,plan,score
a1,a1@example.com,vip,,premium,50
b2,b2@example.com,news,promotional,basic,10
c3,c3@example.com,news,,basic,90
"""


def campaign(name: str = "spring", *, audience: str = "{all: true}", extra: str = "",
             message_type: str = "promotional", body: str = "Hello") -> str:
    return "\n".join([
        "kind: Campaign", f"name: {name}", "timezone: Europe/Paris",
        "closes_at: 2027-06-30T23:59", "type: one-off",
        f'message: {{subject: "Hi", body: "{body}"}}', f"audience: {audience}",
        f"message_type: {message_type}", extra or "schedule: {queue: immediately, "
        "send: immediately}"]) + "\n"
