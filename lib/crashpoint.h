/*
 * Crash points: named places where a process can be made to die at once, for the tests
 * that check what survives a crash at exactly that instant (SQLite's and FoundationDB's
 * fault injection; tests/integration/test_crashpoints.py walks every point).
 *
 * Compiled into every build and inert unless the environment variable DYNO_CRASH_AT names
 * the point when the process starts:
 *     DYNO_CRASH_AT=<name>       exit at the first pass through <name>
 *     DYNO_CRASH_AT=<name>@<n>   exit at the n-th pass (n >= 1)
 * The process then calls _exit(DYNO_CRASH_EXIT) after one line on stderr: no atexit
 * handlers, no buffered output flushed, nothing the code had not made durable itself, as
 * a SIGKILL at that instant would leave it. An unset or unmatched variable costs one
 * string compare per pass.
 *
 * The points (docs/healing.md lists them with what each proves):
 *   container.put.before_rename  fragment written and fsynced, not yet renamed into place
 *   container.put.before_reply   fragment renamed into place, 201 not yet sent
 *   container.volume.after_append   small fragment's record written to its volume, not synced
 *   container.volume.after_sync     record covered by a group commit's fdatasync, not indexed
 *   container.volume.before_unlink  compaction's copies synced, the old volume not yet deleted
 *   metadata.batch.before_commit a batch of writes run in its transaction, COMMIT not yet issued
 *   metadata.commit.before_reply object.commit durable in SQLite, answer not yet sent
 *   gateway.put.before_commit    write quorum reached, object.commit not yet sent
 *   gateway.put.before_reply     object.commit answered, the client not yet answered
 *   repair.before_complete       rebuilt fragments stored, repair.complete not yet sent
 *   repair.mid_move              the first stripe of a repair or drain move written
 *   gc.before_complete           garbage fragments deleted, gc.complete not yet sent
 */
#ifndef DYNO_CRASHPOINT_H
#define DYNO_CRASHPOINT_H

#define DYNO_CRASH_ENV "DYNO_CRASH_AT"
#define DYNO_CRASH_EXIT 86 /* exit status of a crash point, so a test tells it from a bug */

/* Exits the process when DYNO_CRASH_AT selects name (see above); returns otherwise.
 * Any thread; async-signal-unsafe only in the getenv of its first call. */
void dyno_crash_point(const char *name);
#endif
