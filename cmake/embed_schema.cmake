# Turns auth.db.sql into a C++ source file holding it as one string constant.
file(READ ${IN} LATCH_SQL)
file(WRITE ${OUT} "// Generated from auth.db.sql; do not edit.\n#include \"db/schema.h\"\nnamespace latch::db {\nconst char *const kSchemaSql = R\"latchsql(${LATCH_SQL})latchsql\";\n}\n")
