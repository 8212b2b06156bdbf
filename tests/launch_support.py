"""Shared by the engine and isolation fixtures: approve (and start) the campaigns of a YAML text."""

from __future__ import annotations


def campaign_names(text: str) -> list[str]:
    """The names of the Campaign documents in `text` (one `kind:` and `name:` line each)."""
    names = [line.split(":", 1)[1].strip() for line in text.splitlines()
             if line.startswith("name:")]
    kinds = [line.split(":", 1)[1].strip() for line in text.splitlines()
             if line.startswith("kind:")]
    return [n for n, k in zip(names, kinds, strict=True) if k == "Campaign"]


def approve_campaigns(cli, text: str, *, at: str, start: bool) -> list[str]:
    """submit, approve and (with `start`) start every campaign of `text` at `at`."""
    campaigns = campaign_names(text)
    for name in campaigns:
        for verb in ("submit", "approve") + (("start",) if start else ()):
            result = cli("--now", at, verb, "campaign", name)
            assert result.exit_code == 0, result
    return campaigns
