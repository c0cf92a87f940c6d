-- migrations applied: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
-- index activity_log_item
CREATE INDEX activity_log_item ON activity_log (project_id, scope, item_id, id);
-- index cohort_project
CREATE INDEX cohort_project ON cohort (project_id, id);
-- index cohort_static_member_distinct_id
CREATE INDEX cohort_static_member_distinct_id ON cohort_static_member (project_id, distinct_id);
-- index console_session_user
CREATE INDEX console_session_user ON console_session (user_id);
-- index dashboard_project
CREATE INDEX dashboard_project ON dashboard (project_id, deleted, id);
-- index dashboard_tile_dashboard
CREATE INDEX dashboard_tile_dashboard ON dashboard_tile (dashboard_id, id);
-- index dashboard_tile_insight
CREATE INDEX dashboard_tile_insight ON dashboard_tile (insight_id);
-- index deletion_job_project
CREATE INDEX deletion_job_project ON deletion_job (project_id, id);
-- index event_distinct_id
CREATE INDEX event_distinct_id ON event (project_id, distinct_id, timestamp);
-- index event_facts
CREATE INDEX event_facts ON event (project_id, timestamp, event, distinct_id, mp_session_id, mp_pathname, mp_host, mp_browser, mp_os, mp_device_type, mp_referring_domain, mp_utm_source, mp_utm_medium, mp_utm_campaign, mp_utm_content, mp_utm_term);
-- index event_name
CREATE INDEX event_name ON event (project_id, event, timestamp, distinct_id);
-- index event_uuid
CREATE UNIQUE INDEX event_uuid ON event (project_id, uuid);
-- index feature_flag_key
CREATE UNIQUE INDEX feature_flag_key ON feature_flag (project_id, key) WHERE deleted = 0;
-- index feature_flag_project
CREATE INDEX feature_flag_project ON feature_flag (project_id, id);
-- index ingest_quarantine_project
CREATE INDEX ingest_quarantine_project ON ingest_quarantine (project_id, id);
-- index insight_modified
CREATE INDEX insight_modified ON insight (project_id, deleted, last_modified_at);
-- index insight_short_id
CREATE UNIQUE INDEX insight_short_id ON insight (project_id, short_id);
-- index person_distinct_id_person
CREATE INDEX person_distinct_id_person ON person_distinct_id (person_id);
-- index person_project
CREATE INDEX person_project ON person (project_id, id);
-- index personal_key_lookup
CREATE INDEX personal_key_lookup ON personal_key (lookup);
-- table activity_log
CREATE TABLE activity_log ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, scope TEXT NOT NULL, item_id INTEGER NOT NULL, activity TEXT NOT NULL, key_id INTEGER, created_at INTEGER NOT NULL, before TEXT, after TEXT , user_id INTEGER);
-- table actor_day
CREATE TABLE actor_day ( project_id INTEGER NOT NULL, day INTEGER NOT NULL, event TEXT NOT NULL, actor NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (project_id, event, day, actor) ) WITHOUT ROWID;
-- table actor_day_zone
CREATE TABLE actor_day_zone ( project_id INTEGER PRIMARY KEY, timezone TEXT NOT NULL );
-- table cohort
CREATE TABLE cohort ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '', filters TEXT NOT NULL DEFAULT '{}', is_static INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, created_by INTEGER, last_modified_by INTEGER );
-- table cohort_static_member
CREATE TABLE cohort_static_member ( project_id INTEGER NOT NULL, cohort_id INTEGER NOT NULL, distinct_id TEXT NOT NULL, PRIMARY KEY (cohort_id, distinct_id) ) WITHOUT ROWID;
-- table console_link
CREATE TABLE console_link ( token_hash TEXT PRIMARY KEY, user_id INTEGER, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER );
-- table console_session
CREATE TABLE console_session ( token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL, csrf TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL );
-- table console_user
CREATE TABLE console_user ( id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE, password_hash TEXT, role TEXT NOT NULL CHECK (role IN ('admin', 'member')), created_at INTEGER NOT NULL );
-- table dashboard
CREATE TABLE dashboard ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT, description TEXT NOT NULL DEFAULT '', pinned INTEGER NOT NULL DEFAULT 0, filters TEXT NOT NULL DEFAULT '{}', tags TEXT NOT NULL DEFAULT '[]', creation_mode TEXT NOT NULL DEFAULT 'default', deleted INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, created_by_key INTEGER, created_by_user INTEGER, updated_at INTEGER NOT NULL );
-- table dashboard_tile
CREATE TABLE dashboard_tile ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, dashboard_id INTEGER NOT NULL, insight_id INTEGER, text TEXT, layouts TEXT NOT NULL DEFAULT '{}', color TEXT, deleted INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL );
-- table day_dirty
CREATE TABLE day_dirty ( project_id INTEGER NOT NULL, day INTEGER NOT NULL, day_end INTEGER NOT NULL, PRIMARY KEY (project_id, day) ) WITHOUT ROWID;
-- table deletion_job
CREATE TABLE deletion_job ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, filter TEXT NOT NULL, max_event_id INTEGER NOT NULL, cursor INTEGER NOT NULL DEFAULT 0, expected INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')), error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER );
-- table event
CREATE TABLE event ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, uuid BLOB NOT NULL, event TEXT NOT NULL, distinct_id TEXT NOT NULL, properties TEXT NOT NULL, timestamp INTEGER NOT NULL, created_at INTEGER NOT NULL, person_id INTEGER , mp_session_id TEXT, mp_pathname TEXT, mp_host TEXT, mp_browser TEXT, mp_os TEXT, mp_device_type TEXT, mp_referring_domain TEXT, mp_utm_source TEXT, mp_utm_medium TEXT, mp_utm_campaign TEXT, mp_utm_content TEXT, mp_utm_term TEXT);
-- table event_hour
CREATE TABLE event_hour ( project_id INTEGER NOT NULL, event TEXT NOT NULL, hour INTEGER NOT NULL, distinct_id TEXT NOT NULL, browser NOT NULL, os NOT NULL, device_type NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (project_id, event, hour, distinct_id, browser, os, device_type) ) WITHOUT ROWID;
-- table feature_flag
CREATE TABLE feature_flag ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', active INTEGER NOT NULL DEFAULT 1, deleted INTEGER NOT NULL DEFAULT 0, filters TEXT NOT NULL DEFAULT '{}', ensure_experience_continuity INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 1, evaluation_runtime TEXT NOT NULL DEFAULT 'all', evaluation_tags TEXT NOT NULL DEFAULT '[]', bucketing_identifier TEXT, is_remote_configuration INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, created_by INTEGER, last_modified_by INTEGER );
-- table flag_hash_key_override
CREATE TABLE flag_hash_key_override ( project_id INTEGER NOT NULL, person_id INTEGER NOT NULL, flag_key TEXT NOT NULL, hash_key TEXT NOT NULL, PRIMARY KEY (project_id, person_id, flag_key) );
-- table forward_destination
CREATE TABLE forward_destination ( project_id INTEGER PRIMARY KEY, host TEXT NOT NULL, project_api_key TEXT NOT NULL, backfill_after INTEGER, backfill_until INTEGER, sent INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_error_at INTEGER, last_sent_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL );
-- table forward_outbox
CREATE TABLE forward_outbox ( project_id INTEGER NOT NULL, event_id INTEGER NOT NULL, queued_at INTEGER NOT NULL, PRIMARY KEY (project_id, event_id) ) WITHOUT ROWID;
-- table group_
CREATE TABLE group_ ( project_id INTEGER NOT NULL, group_type_index INTEGER NOT NULL, group_key TEXT NOT NULL, properties TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL, PRIMARY KEY (project_id, group_type_index, group_key) );
-- table group_type
CREATE TABLE group_type ( project_id INTEGER NOT NULL, group_type_index INTEGER NOT NULL, group_type TEXT NOT NULL, PRIMARY KEY (project_id, group_type_index), UNIQUE (project_id, group_type) );
-- table id_counter
CREATE TABLE id_counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- table ingest_quarantine
CREATE TABLE ingest_quarantine ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, received_at INTEGER NOT NULL, quarantined_at INTEGER NOT NULL, reason TEXT NOT NULL, event TEXT NOT NULL );
-- table insight
CREATE TABLE insight ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, short_id TEXT NOT NULL, name TEXT, description TEXT NOT NULL DEFAULT '', query TEXT, tags TEXT NOT NULL DEFAULT '[]', saved INTEGER NOT NULL DEFAULT 0, favorited INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, created_by_key INTEGER, created_by_user INTEGER, last_modified_at INTEGER NOT NULL, last_modified_by_key INTEGER, last_modified_by_user INTEGER, updated_at INTEGER NOT NULL );
-- table insight_cache
CREATE TABLE insight_cache ( insight_id INTEGER NOT NULL, query_key TEXT NOT NULL, project_id INTEGER NOT NULL, response TEXT NOT NULL, computed_at INTEGER NOT NULL, PRIMARY KEY (insight_id, query_key) );
-- table materialized_property
CREATE TABLE materialized_property ( property TEXT PRIMARY KEY, column_name TEXT NOT NULL UNIQUE, todo_from INTEGER NOT NULL, todo_to INTEGER NOT NULL, created_at INTEGER NOT NULL );
-- table person
CREATE TABLE person ( id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, uuid TEXT NOT NULL UNIQUE, properties TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL, is_identified INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0 );
-- table person_distinct_id
CREATE TABLE person_distinct_id ( project_id INTEGER NOT NULL, distinct_id TEXT NOT NULL, person_id INTEGER NOT NULL, PRIMARY KEY (project_id, distinct_id) ) WITHOUT ROWID;
-- table personal_key
CREATE TABLE personal_key ( id INTEGER PRIMARY KEY, label TEXT NOT NULL DEFAULT '', lookup TEXT NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL, project_ids TEXT, created_at INTEGER NOT NULL, revoked_at INTEGER );
-- table project
CREATE TABLE project ( id INTEGER PRIMARY KEY, name TEXT NOT NULL, api_token TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL , timezone TEXT NOT NULL DEFAULT 'UTC', week_start_day INTEGER NOT NULL DEFAULT 0, retention_days INTEGER, deleted_at INTEGER);
-- table rollup_dirty
CREATE TABLE rollup_dirty ( project_id INTEGER NOT NULL, hour INTEGER NOT NULL, PRIMARY KEY (project_id, hour) ) WITHOUT ROWID;
-- table schema_migration
CREATE TABLE schema_migration ( version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
-- table session_hour
CREATE TABLE session_hour ( project_id INTEGER NOT NULL, hour INTEGER NOT NULL, session_id TEXT NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL, views INTEGER NOT NULL, autocaptures INTEGER NOT NULL, visitor TEXT, PRIMARY KEY (project_id, hour, session_id) ) WITHOUT ROWID;
-- table spool_state
CREATE TABLE spool_state ( id INTEGER PRIMARY KEY CHECK (id = 1), segment INTEGER NOT NULL, offset INTEGER NOT NULL , done_events INTEGER NOT NULL DEFAULT 0);
-- trigger actor_day_event_delete
CREATE TRIGGER actor_day_event_delete AFTER DELETE ON event WHEN OLD.mp_session_id IS NULL BEGIN INSERT OR IGNORE INTO rollup_dirty (project_id, hour) VALUES (OLD.project_id, OLD.timestamp - ((OLD.timestamp % 3600000) + 3600000) % 3600000); END;
-- trigger actor_day_pdi_delete
CREATE TRIGGER actor_day_pdi_delete AFTER DELETE ON person_distinct_id BEGIN INSERT OR IGNORE INTO rollup_dirty (project_id, hour) SELECT DISTINCT project_id, timestamp - ((timestamp % 3600000) + 3600000) % 3600000 FROM event WHERE project_id = OLD.project_id AND distinct_id = OLD.distinct_id; END;
-- trigger actor_day_pdi_insert
CREATE TRIGGER actor_day_pdi_insert AFTER INSERT ON person_distinct_id BEGIN INSERT OR IGNORE INTO rollup_dirty (project_id, hour) SELECT DISTINCT project_id, timestamp - ((timestamp % 3600000) + 3600000) % 3600000 FROM event WHERE project_id = NEW.project_id AND distinct_id = NEW.distinct_id; END;
-- trigger actor_day_pdi_update
CREATE TRIGGER actor_day_pdi_update AFTER UPDATE OF person_id ON person_distinct_id BEGIN INSERT OR IGNORE INTO rollup_dirty (project_id, hour) SELECT DISTINCT project_id, timestamp - ((timestamp % 3600000) + 3600000) % 3600000 FROM event WHERE project_id = NEW.project_id AND distinct_id = NEW.distinct_id; END;
-- trigger event_hour_delete
CREATE TRIGGER event_hour_delete AFTER DELETE ON event BEGIN UPDATE event_hour SET n = n - 1 WHERE project_id = OLD.project_id AND event = OLD.event AND hour = (OLD.timestamp - ((OLD.timestamp % 3600000) + 3600000) % 3600000) AND distinct_id = OLD.distinct_id AND browser = coalesce(OLD.mp_browser, x'') AND os = coalesce(OLD.mp_os, x'') AND device_type = coalesce(OLD.mp_device_type, x''); DELETE FROM event_hour WHERE project_id = OLD.project_id AND event = OLD.event AND hour = (OLD.timestamp - ((OLD.timestamp % 3600000) + 3600000) % 3600000) AND distinct_id = OLD.distinct_id AND browser = coalesce(OLD.mp_browser, x'') AND os = coalesce(OLD.mp_os, x'') AND device_type = coalesce(OLD.mp_device_type, x'') AND n <= 0; END;
-- trigger session_hour_delete
CREATE TRIGGER session_hour_delete AFTER DELETE ON event WHEN OLD.mp_session_id IS NOT NULL BEGIN INSERT OR IGNORE INTO rollup_dirty (project_id, hour) VALUES (OLD.project_id, OLD.timestamp - ((OLD.timestamp % 3600000) + 3600000) % 3600000); END;
