/* CSQLite: SQLite 3 from Debian's libsqlite3-dev, for MedData's dataset index. */
#include <sqlite3.h>
/* SQLITE_TRANSIENT is a macro around a cast Swift cannot import: ask SQLite to copy bound text and blobs. */
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }
