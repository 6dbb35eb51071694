-- ferry:lock_timeout=soon
SELECT 1;
