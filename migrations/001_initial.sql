-- Learner checkpoints and the optional prediction log.
-- Times are epoch milliseconds passed in by the caller (in replay: the data's time),
-- never read from SQLite's clock, so replayed runs write identical rows.

CREATE TABLE checkpoints (
  id          INTEGER PRIMARY KEY,
  symbol      TEXT    NOT NULL CHECK (length(symbol) > 0),
  created_at  INTEGER NOT NULL,
  tick_count  INTEGER NOT NULL CHECK (tick_count >= 0),
  config_hash TEXT    NOT NULL,
  -- sha256 hex of payload, verified before a checkpoint is restored.
  checksum    TEXT    NOT NULL CHECK (length(checksum) = 64),
  -- Opaque engine state; the store never looks inside.
  payload     BLOB    NOT NULL,
  size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),
  -- 'interval', 'shutdown', 'manual', 'replay-end', 'import'...
  reason      TEXT
);

-- Newest-first per symbol: restore, listing and keep-last-K pruning all walk it.
CREATE INDEX checkpoints_symbol_id ON checkpoints (symbol, id DESC);

CREATE TABLE predictions (
  id         INTEGER PRIMARY KEY,
  symbol     TEXT    NOT NULL,
  ts         REAL    NOT NULL,
  seq        INTEGER,
  model      TEXT    NOT NULL,
  -- JSON array of class probabilities, in the model's class order.
  probs      TEXT    NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE INDEX predictions_symbol_ts ON predictions (symbol, ts);
-- Retention deletes by age across all symbols; without this it would scan the table.
CREATE INDEX predictions_created_at ON predictions (created_at);
