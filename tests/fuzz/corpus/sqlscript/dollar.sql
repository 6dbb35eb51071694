CREATE FUNCTION f() RETURNS int AS $body$
BEGIN
  RETURN 1; -- ; inside
END;
$body$ LANGUAGE plpgsql;
COMMENT ON TABLE x IS E'semi;colon\'s';
/* block /* nested */ comment ; */ SELECT 1;
