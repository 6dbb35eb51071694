-- fermeout=3s
-- ferry:statement_timeout=3222222222222222226
CREu;
