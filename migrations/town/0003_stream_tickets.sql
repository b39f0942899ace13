-- Stream tickets already used (single use); rows are pruned once the ticket has expired anyway.
CREATE TABLE used_tickets (
  jti TEXT PRIMARY KEY,
  expires_at TEXT NOT NULL
);
