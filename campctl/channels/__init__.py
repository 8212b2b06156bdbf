"""Channels: outbox, smtp, webhook behind one small interface."""
