// Package sqlite is the single-instance store backend: one SQLite file in
// WAL mode through the pure-Go modernc.org/sqlite driver, so the app ships
// as one static binary with no database server.
//
// Only one process may use a database file at a time as far as the app's
// locking goes: WithPortalLock and WithSessionLock are in-process mutexes.
// Run several instances on store/postgres instead.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store/sqldb"
)

// migrations holds the schema, one numbered file per step ("0001_init.sql"),
// applied in order and recorded in schema_migrations.
//
//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeoutMS is how long a writer waits for another writer's lock before
// SQLITE_BUSY. Writes here are single short statements or transactions that
// never span a network call, so a few seconds is a generous upper bound.
const busyTimeoutMS = 5000

// Store is the SQLite backend of store.Store: the shared implementation
// (store/sqldb) in the SQLite dialect. It is safe for concurrent use by
// many goroutines of one process.
type Store = sqldb.Store

// Open opens (creating it and its parent directories if needed) the
// database file at path and brings its schema up to date. The special path
// ":memory:" gives a private in-memory database, for tests and demos only.
// keys seals every token written and opens every token read.
func Open(ctx context.Context, path string, keys *secret.Keyring) (*Store, error) {
	if keys == nil {
		return nil, errors.New("store: open sqlite: nil keyring")
	}
	if path == "" {
		return nil, errors.New("store: open sqlite: empty path")
	}
	// The driver splits the DSN at the first '?', so such a name would be
	// silently cut and its tail read as options.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("store: open sqlite: path %q contains '?'", path)
	}
	memory := path == ":memory:"
	if !memory {
		if err := createFile(path); err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
	}

	// Every pooled connection runs these pragmas when it opens.
	// journal_mode=WAL lets readers run while one writer writes;
	// busy_timeout makes a second writer wait instead of failing;
	// foreign_keys is off by default in SQLite. _txlock=immediate makes
	// every BEGIN take the write lock up front: a deferred transaction that
	// reads and then writes cannot wait for the lock and fails with
	// SQLITE_BUSY whatever busy_timeout says. synchronous=NORMAL in WAL mode
	// commits without an fsync (a crash of the process loses nothing, one
	// of the machine at most the last commits), which was the largest single
	// cost of a tab view; the writes of tokens Bitrix24 has already replaced
	// switch their connection to FULL (sqldb's durable), because the refresh
	// token they replaced is spent upstream.
	dsn := path + "?_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)" +
		"&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	if memory {
		// Each connection to ":memory:" is a separate empty database: keep
		// exactly one so every query sees the same data.
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	} else {
		// One writer at a time anyway; a handful of connections lets reads
		// proceed alongside it without piling up open files.
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	}

	// Switching a new file to WAL needs an exclusive lock, and SQLite
	// answers SQLITE_BUSY at once (without its busy handler) when another
	// process is doing the same: retry that first step for a while.
	var err2 error
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		if err2 = check(ctx, db, memory); err2 == nil {
			err2 = sqldb.Migrate(ctx, db, migrations, sqldb.SQLite)
		}
		if err2 == nil || !strings.Contains(err2.Error(), "SQLITE_BUSY") || wait > time.Second || ctx.Err() != nil {
			break
		}
		time.Sleep(wait)
	}
	if err2 != nil {
		_ = db.Close()
		return nil, err2
	}
	return sqldb.New(db, keys, sqldb.SQLite), nil
}

// createFile makes the parent directories and an empty database file that
// only the app's user can read: the tokens in it are encrypted, but the
// rest (which portals use the app, who opened which lead) is not public.
func createFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- the operator's DATABASE_URL, not request input
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	return f.Close()
}

// check verifies the connection works and WAL took effect: journal_mode
// silently stays on its old value on file systems without shared memory.
func check(ctx context.Context, db *sql.DB, memory bool) error {
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("store: open sqlite: %w", err)
	}
	if !memory && !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("store: open sqlite: journal_mode is %q, want wal", mode)
	}
	return nil
}
