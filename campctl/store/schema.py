"""Schema migrations, in order. Each migration is a list of statements run in one transaction.

Never edit a migration that has shipped; append a new one. The version is PRAGMA user_version.
"""

from __future__ import annotations

# Version 1: the foundation (definitions, history, config) and the whole execution model, so that
# later features only add behaviour.
V1 = [
    """CREATE TABLE config (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # Every definition, all kinds. `status` is the business status (campaign, plan) or
    # active/inactive (scenario); NULL for segments and channels.
    """CREATE TABLE objects (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        description TEXT,
        status TEXT,
        source TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        launched_at TEXT,
        PRIMARY KEY (kind, name)
    )""",
    # The no-op tick asks "was a campaign launched since the last tick?" without a table scan.
    "CREATE INDEX objects_launched ON objects (kind, launched_at) WHERE launched_at IS NOT NULL",
    """CREATE TABLE object_versions (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        description TEXT,
        applied_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        source TEXT,
        history_id INTEGER,
        PRIMARY KEY (kind, name, version)
    )""",
    # The action history of every object (definitions by kind/name, runs/instances/launches by id).
    """CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        from_status TEXT,
        to_status TEXT,
        note TEXT
    )""",
    "CREATE INDEX history_object ON history (kind, name, id)",
    # --- audience -------------------------------------------------------------------------
    # AUTOINCREMENT: a forgotten contact's number is never reused by someone else's queue items.
    """CREATE TABLE contacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        external_id TEXT NOT NULL UNIQUE,
        email TEXT,
        phone TEXT,
        attrs TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE contact_groups (
        grp TEXT NOT NULL,
        contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
        PRIMARY KEY (grp, contact_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX contact_groups_contact ON contact_groups (contact_id)",
    """CREATE TABLE contact_optouts (
        contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
        message_type TEXT NOT NULL,
        PRIMARY KEY (contact_id, message_type)
    ) WITHOUT ROWID""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        contact_id INTEGER REFERENCES contacts (id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        data TEXT,
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX events_name ON events (name, id)",
    "CREATE INDEX events_contact ON events (contact_id, name, at)",
    # Where each consumer (event-triggered campaign, event-captured scenario) has read up to.
    """CREATE TABLE event_cursors (
        consumer TEXT PRIMARY KEY,
        last_event_id INTEGER NOT NULL
    )""",
    # --- schedules and runs -------------------------------------------------------------------
    # An occurrence is unique by (object, scheduled time): the database makes firing exactly-once.
    """CREATE TABLE occurrences (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        scheduled_at TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (kind, name, scheduled_at)
    )""",
    # The next instant at which an object's schedule needs attention; a no-op tick reads only this.
    """CREATE TABLE schedule_state (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        next_due_at TEXT,
        cursor_at TEXT,
        PRIMARY KEY (kind, name)
    )""",
    "CREATE INDEX schedule_state_due ON schedule_state (next_due_at)",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        stage TEXT NOT NULL,
        status TEXT NOT NULL,
        scheduled_at TEXT,
        queue_at TEXT,
        send_at TEXT,
        built_at TEXT,
        finished_at TEXT,
        instance_id INTEGER,
        restart_of INTEGER REFERENCES runs (id),
        include_sent INTEGER NOT NULL DEFAULT 0,
        occurrence_id INTEGER REFERENCES occurrences (id),
        spec TEXT NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        paused_from TEXT
    )""",
    "CREATE INDEX runs_campaign ON runs (campaign, id)",
    "CREATE INDEX runs_status ON runs (status)",
    # One queue item per recipient and run; the message id is deterministic and unique.
    """CREATE TABLE queue_items (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL UNIQUE,
        run_id INTEGER REFERENCES runs (id),
        profile_id INTEGER,
        scenario TEXT,
        step TEXT,
        contact_id INTEGER,
        channel TEXT NOT NULL,
        message_type TEXT,
        status TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at TEXT,
        claimed_until TEXT,
        claim_token TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        UNIQUE (run_id, contact_id)
    )""",
    "CREATE INDEX queue_items_due ON queue_items (run_id, next_attempt_at) WHERE status = 'queued'",
    "CREATE INDEX queue_items_run_status ON queue_items (run_id, status)",
    "CREATE INDEX queue_items_profile ON queue_items (profile_id) WHERE profile_id IS NOT NULL",
    """CREATE TABLE outbox (
        message_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        run_id INTEGER,
        campaign TEXT,
        stage TEXT,
        scenario TEXT,
        step TEXT,
        contact TEXT,
        recipient TEXT,
        subject TEXT,
        body TEXT,
        sent_at TEXT NOT NULL
    )""",
    "CREATE INDEX outbox_run ON outbox (run_id)",
    "CREATE INDEX outbox_campaign ON outbox (campaign, sent_at)",
    # Sliding-window throttle per channel, shared by every run and tick.
    """CREATE TABLE channel_sends (
        channel TEXT NOT NULL,
        window_start TEXT NOT NULL,
        sent INTEGER NOT NULL,
        PRIMARY KEY (channel, window_start)
    ) WITHOUT ROWID""",
    """CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        object TEXT NOT NULL,
        note TEXT,
        actor TEXT,
        delivered_at TEXT,
        delivery_error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        claimed_until TEXT
    )""",
    "CREATE INDEX notifications_pending ON notifications (id) WHERE delivered_at IS NULL",
    # --- plans ---------------------------------------------------------------------------------
    """CREATE TABLE plan_instances (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        plan TEXT NOT NULL,
        status TEXT NOT NULL,
        scheduled_at TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        plan_version INTEGER NOT NULL,
        snapshot TEXT NOT NULL,
        occurrence_id INTEGER REFERENCES occurrences (id),
        error TEXT
    )""",
    "CREATE INDEX plan_instances_plan ON plan_instances (plan, status)",
    """CREATE TABLE stage_instances (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES plan_instances (id),
        position INTEGER NOT NULL,
        campaign TEXT NOT NULL,
        code TEXT,
        stage TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT,
        activity_created_at TEXT,
        activity_finished_at TEXT,
        ended_at TEXT,
        completed INTEGER NOT NULL DEFAULT 0,
        has_errors INTEGER NOT NULL DEFAULT 0,
        run_id INTEGER REFERENCES runs (id),
        run_log TEXT,
        queue_created_at TEXT,
        delivery_started_at TEXT,
        sent_logged INTEGER NOT NULL DEFAULT 0,
        UNIQUE (instance_id, position)
    )""",
    "CREATE INDEX stage_instances_run ON stage_instances (run_id)",
    # The execution log of plans, runs and scenarios (`campctl log`).
    """CREATE TABLE exec_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        plan TEXT,
        instance_id INTEGER,
        campaign TEXT,
        stage TEXT,
        run_id INTEGER,
        scenario TEXT,
        details TEXT
    )""",
    "CREATE INDEX exec_log_plan ON exec_log (plan, id)",
    "CREATE INDEX exec_log_instance ON exec_log (instance_id, id)",
    "CREATE INDEX exec_log_run ON exec_log (run_id, id)",
    # --- scenarios -----------------------------------------------------------------------------
    """CREATE TABLE scenario_launches (
        id INTEGER PRIMARY KEY,
        scenario TEXT NOT NULL,
        status TEXT NOT NULL,
        targeted INTEGER NOT NULL DEFAULT 0,
        include_opted_out INTEGER NOT NULL DEFAULT 0,
        selection TEXT,
        actor TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT
    )""",
    """CREATE TABLE scenario_profiles (
        id INTEGER PRIMARY KEY,
        scenario TEXT NOT NULL,
        contact_id INTEGER NOT NULL,
        step TEXT,
        status TEXT NOT NULL,
        entered_at TEXT NOT NULL,
        wake_at TEXT,
        exited_at TEXT,
        launch_id INTEGER REFERENCES scenario_launches (id),
        capture_key TEXT,
        error TEXT,
        updated_at TEXT NOT NULL,
        visit INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        include_opted_out INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX scenario_profiles_step ON scenario_profiles (scenario, status, step)",
    "CREATE INDEX scenario_profiles_wake ON scenario_profiles (status, wake_at)",
    "CREATE INDEX scenario_profiles_contact ON scenario_profiles (scenario, contact_id)",
    # One profile per capture (event id, occurrence, launch): a replayed capture adds nothing.
    "CREATE UNIQUE INDEX scenario_profiles_capture ON scenario_profiles "
    "(scenario, contact_id, capture_key)",
    # Partial, without status: journey moves of launch-less profiles never touch it.
    "CREATE INDEX scenario_profiles_launch ON scenario_profiles (launch_id) "
    "WHERE launch_id IS NOT NULL",
]

# V2: the seams between objects (message ids never reused, outbox files cut back to their
# committed length, ...). Each area appends its statements here; V1 has shipped and never changes.
V2: list[str] = [
    # failures: when a message failed for good, and the index `campctl failures` reads by
    "ALTER TABLE queue_items ADD COLUMN failed_at TEXT",
    "CREATE INDEX queue_items_failed ON queue_items (scenario, step) WHERE status = 'failed'",
    # scenarios: profile ids never come back (scenario message ids are built from them), so the
    # table is rebuilt with AUTOINCREMENT, every row and id kept; the sequence starts above every
    # profile id a message already names, including profiles deleted under schema 1.
    # `cleared_at`: clear/remove-profile mark profiles instead of deleting them (statistics and
    # launch results keep counting them; re-entry ignores them).
    "ALTER TABLE scenario_profiles RENAME TO scenario_profiles_v1",
    """CREATE TABLE scenario_profiles (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scenario TEXT NOT NULL,
        contact_id INTEGER NOT NULL,
        step TEXT,
        status TEXT NOT NULL,
        entered_at TEXT NOT NULL,
        wake_at TEXT,
        exited_at TEXT,
        launch_id INTEGER REFERENCES scenario_launches (id),
        capture_key TEXT,
        error TEXT,
        updated_at TEXT NOT NULL,
        visit INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        include_opted_out INTEGER NOT NULL DEFAULT 0,
        cleared_at TEXT
    )""",
    "INSERT INTO scenario_profiles (id, scenario, contact_id, step, status, entered_at, wake_at, "
    "exited_at, launch_id, capture_key, error, updated_at, visit, skipped, include_opted_out) "
    "SELECT id, scenario, contact_id, step, status, entered_at, wake_at, exited_at, launch_id, "
    "capture_key, error, updated_at, visit, skipped, include_opted_out "
    "FROM scenario_profiles_v1 ORDER BY id",
    "DROP TABLE scenario_profiles_v1",
    "CREATE INDEX scenario_profiles_step ON scenario_profiles (scenario, status, step)",
    "CREATE INDEX scenario_profiles_wake ON scenario_profiles (status, wake_at)",
    "CREATE INDEX scenario_profiles_contact ON scenario_profiles (scenario, contact_id)",
    "CREATE UNIQUE INDEX scenario_profiles_capture ON scenario_profiles "
    "(scenario, contact_id, capture_key)",
    "CREATE INDEX scenario_profiles_launch ON scenario_profiles (launch_id) "
    "WHERE launch_id IS NOT NULL",
    "DELETE FROM sqlite_sequence WHERE name = 'scenario_profiles'",
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'scenario_profiles', max("
    "(SELECT coalesce(max(id), 0) FROM scenario_profiles), "
    "(SELECT coalesce(max(profile_id), 0) FROM queue_items))",
    # scenarios: each `restart` re-entry keeps the entry it replaced, so `stats` counts both.
    """CREATE TABLE scenario_reentries (
        id INTEGER PRIMARY KEY,
        scenario TEXT NOT NULL,
        profile_id INTEGER NOT NULL,
        entered_at TEXT NOT NULL
    )""",
    "CREATE INDEX scenario_reentries_scenario ON scenario_reentries (scenario, entered_at)",
    # scenarios: since when each scenario is active; an event captures only if dated after it.
    """CREATE TABLE scenario_activations (
        scenario TEXT PRIMARY KEY,
        active_since TEXT NOT NULL
    )""",
    "INSERT INTO scenario_activations (scenario, active_since) "
    "SELECT o.name, coalesce((SELECT max(h.at) FROM history h WHERE h.kind = 'Scenario' "
    "AND h.name = o.name AND h.to_status = 'active'), o.updated_at) "
    "FROM objects o WHERE o.kind = 'Scenario' AND o.status = 'active'",
    # scenarios/events: event ids never come back either. Consumers read events by id after a
    # cursor; an id reused after `contacts forget` (the newest event deleted) sat at or below
    # every cursor and was never seen. Rebuilt with AUTOINCREMENT, every row and id kept; the
    # sequence starts above every id a cursor or the "events seen" marker has passed.
    "ALTER TABLE events RENAME TO events_v1",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        contact_id INTEGER REFERENCES contacts (id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        data TEXT,
        recorded_at TEXT NOT NULL
    )""",
    "INSERT INTO events (id, name, contact_id, at, data, recorded_at) "
    "SELECT id, name, contact_id, at, data, recorded_at FROM events_v1 ORDER BY id",
    "DROP TABLE events_v1",
    "CREATE INDEX events_name ON events (name, id)",
    "CREATE INDEX events_contact ON events (contact_id, name, at)",
    "DELETE FROM sqlite_sequence WHERE name = 'events'",
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', max("
    "(SELECT coalesce(max(id), 0) FROM events), "
    "(SELECT coalesce(max(last_event_id), 0) FROM event_cursors), "
    "(SELECT coalesce(max(CAST(cursor_at AS INTEGER)), 0) FROM schedule_state "
    "WHERE kind = 'Events' AND name = 'seen'))",
    # closing: each run carries its campaign's closing instant (UTC), so that delivery refuses to
    # claim its items once it has passed and a tick finds runs to close without reading specs.
    "ALTER TABLE runs ADD COLUMN closes_at TEXT",
    "CREATE INDEX runs_closing ON runs (closes_at) WHERE closes_at IS NOT NULL"
    " AND status IN ('scheduled', 'building', 'queued', 'sending', 'paused')",
    # crash and results area: an item whose hand-over may have begun (1 until its outcome is
    # recorded), and each outbox file's length as of the last committed batch.
    "ALTER TABLE queue_items ADD COLUMN handover_begun INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE outbox_files (
        path TEXT PRIMARY KEY,
        committed_length INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    # users: people who act (`--as`), their sending rights, who created each object, contacts
    # left out of a run or launch for rights, work lists, and the addressee of a notification
    """CREATE TABLE users (
        name TEXT PRIMARY KEY,
        email TEXT,
        groups TEXT,
        message_types TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    "ALTER TABLE objects ADD COLUMN created_by TEXT",
    "ALTER TABLE runs ADD COLUMN left_out_rights INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN left_out_reason TEXT",
    "ALTER TABLE scenario_launches ADD COLUMN left_out_rights INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE scenario_launches ADD COLUMN left_out_reason TEXT",
    "ALTER TABLE notifications ADD COLUMN recipient TEXT",
    """CREATE TABLE worklist (
        id INTEGER PRIMARY KEY,
        object_kind TEXT NOT NULL,
        object_id TEXT NOT NULL,
        assigned_to TEXT,
        reason TEXT NOT NULL,
        assigned_at TEXT NOT NULL,
        cleared_at TEXT
    )""",
    # At most one open entry per object: a second stop or failure moves it, never duplicates it.
    "CREATE UNIQUE INDEX worklist_open ON worklist (object_kind, object_id) "
    "WHERE cleared_at IS NULL",
    "CREATE INDEX worklist_assignee ON worklist (assigned_to) WHERE cleared_at IS NULL",
    # isolation: an object whose processing failed in a tick; one row while it keeps failing
    "CREATE TABLE object_failures (kind TEXT NOT NULL, name TEXT NOT NULL, reason TEXT NOT NULL, "
    "first_at TEXT NOT NULL, last_at TEXT NOT NULL, count INTEGER NOT NULL DEFAULT 1, "
    "PRIMARY KEY (kind, name)) WITHOUT ROWID",
    # scenarios: the data carried by the capturing event (or `start scenario --data`), as JSON
    "ALTER TABLE scenario_profiles ADD COLUMN data TEXT",
    # scenarios: the launch an execution-log row is about (`campctl log --launch ID`)
    "ALTER TABLE exec_log ADD COLUMN launch_id INTEGER",
    "CREATE INDEX exec_log_launch ON exec_log (launch_id, id) WHERE launch_id IS NOT NULL",
]

# V3: delivery across hosts (PostgreSQL). Claims scan a channel's queued items in id order; the
# partial index keeps that scan to queued rows (portable: the same statement on both stores).
V3: list[str] = [
    "CREATE INDEX queue_items_claim ON queue_items (channel, id) WHERE status = 'queued'",
]

# V4: frequency caps. Each queue item carries the priority of its campaign or scenario step
# (copied at build, so a claim ranks without reading definitions) and the name of the cap that
# first held it (kept afterwards, so a run counts its capped messages); the partial indexes make
# "messages sent to this contact since T" and "this contact's messages in flight" cheap.
V4: list[str] = [
    "ALTER TABLE queue_items ADD COLUMN priority INTEGER NOT NULL DEFAULT 50",
    "ALTER TABLE queue_items ADD COLUMN capped TEXT",
    "CREATE INDEX queue_items_contact_sent ON queue_items (contact_id, sent_at)"
    " WHERE status = 'sent'",
    "CREATE INDEX queue_items_contact_queued ON queue_items (contact_id)"
    " WHERE status = 'queued'",
]

# V5: sending windows in each recipient's zone (`schedule.window_timezone: contact`): the zone
# an item's window is read in, fixed at build (NULL: the run's own zone), and whether that zone
# is the run's because the contact had none or an invalid one (counted as window_fallback).
V5: list[str] = [
    "ALTER TABLE queue_items ADD COLUMN window_zone TEXT",
    "ALTER TABLE queue_items ADD COLUMN window_fallback INTEGER NOT NULL DEFAULT 0",
]

MIGRATIONS: list[list[str]] = [V1, V2, V3, V4, V5]

SCHEMA_VERSION = len(MIGRATIONS)
