// SqliteDb: a thin RAII wrapper over one sqlite3 connection and its prepared statements, so the
// store speaks absl::Status instead of SQLite result codes.
//
// Why hand-written: the C API is all Debian ships (libsqlite3-dev); the part we use (open, exec,
// prepare, bind, step, column) fits in one small file.
//
// Ownership: SqliteDb owns the connection; a Statement borrows it and must not outlive it.
// Thread-safety: none. The owner (SqliteStore) serialises every use with its own mutex.
// Failure: every call returns INTERNAL (or UNAVAILABLE for SQLITE_BUSY/LOCKED, FAILED_PRECONDITION
// for a constraint violation) with SQLite's message and the SQL that failed.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dino::server {

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql) : db_(db), stmt_(stmt), sql_(sql) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite. Text and blobs are copied.
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, double value);
  Statement& Bind(int index, absl::string_view text);
  Statement& BindBlob(int index, absl::string_view blob);

  // True when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion (for statements that return no rows).
  absl::Status Run();

  int64_t ColumnInt(int column) const;
  double ColumnDouble(int column) const;
  std::string ColumnText(int column) const;  // Text or blob bytes.

 private:
  sqlite3* const db_;
  sqlite3_stmt* const stmt_;
  const std::string sql_;
  absl::Status bind_status_;
};

class SqliteDb {
 public:
  // Opens (creating) `path`, or a private in-memory database for ":memory:".
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements without results.
  absl::Status Exec(absl::string_view sql);
  absl::StatusOr<std::unique_ptr<Statement>> Prepare(absl::string_view sql);

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* const db_;
};

// Maps a SQLite result code and message to a Status.
absl::Status SqliteError(sqlite3* db, int code, absl::string_view what);

}  // namespace dino::server
