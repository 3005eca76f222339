# Turns a schema file (auth.db.sql, db/postgres.sql) into a C++ source file holding it as one
# string constant, named NAME (kSchemaSql unless given).
if(NOT NAME)
  set(NAME kSchemaSql)
endif()
get_filename_component(LATCH_SQL_FILE ${IN} NAME)
file(READ ${IN} LATCH_SQL)
file(WRITE ${OUT} "// Generated from ${LATCH_SQL_FILE}; do not edit.\n#include \"db/schema.h\"\nnamespace latch::db {\nconst char *const ${NAME} = R\"latchsql(${LATCH_SQL})latchsql\";\n}\n")
