// Package sqldb is the one implementation of store.Store over database/sql,
// shared by the SQLite and the PostgreSQL backend. The SQL of each method
// is written once, with ? placeholders, and runs on both; what differs
// between the databases lives in one small Dialect value: placeholders,
// how times are stored, row-lock clauses, and how WithPortalLock and
// WithSessionLock lock. The backends (store/sqlite, store/postgres) open
// the database, apply their own migrations and hand it to New.
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Name names the backend in logs ("sqlite", "postgres").
	Name string
	// Numbered placeholders ($1, $2...) instead of ?.
	Numbered bool
	// Millis stores times as UTC unix milliseconds (SQLite's INTEGER
	// columns); otherwise as timestamps (microseconds).
	Millis bool
	// RowLocks locks rows in transactions (SELECT ... FOR UPDATE), which
	// serializes across processes; otherwise locks are in-process mutexes
	// and the database's own write lock orders transactions.
	RowLocks bool

	forUpdate, forShare string
	// durableOn and durableOff, when set, make the commits of one
	// connection survive a power cut and then stop doing so: SQLite runs
	// with synchronous=NORMAL, whose commits survive a crash of the process
	// but not of the machine, and token writes switch to FULL (see durable).
	durableOn, durableOff string
	// migrationsTable creates schema_migrations; migrationLock, when set,
	// serializes migrating instances (SQLite's immediate transaction does
	// on its own).
	migrationsTable, migrationLock string
}

// SQLite is the dialect of SQLite through modernc.org/sqlite.
var SQLite = Dialect{Name: "sqlite", Millis: true,
	durableOn: "PRAGMA synchronous = FULL", durableOff: "PRAGMA synchronous = NORMAL",
	migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`}

// PostgreSQL is the dialect of PostgreSQL through pgx.
var PostgreSQL = Dialect{Name: "postgres", Numbered: true, RowLocks: true,
	forUpdate: "\nFOR UPDATE", forShare: "\nFOR SHARE",
	migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL
	)`,
	// 0x6c656164636f6e74, "leadcont": instances that start together queue
	// here, and each later one finds nothing to do.
	migrationLock: `SELECT pg_advisory_xact_lock(7810756212536864372)`}

// Store implements store.Store and store.Resealer on one database. It is
// safe for concurrent use; across processes only with a RowLocks dialect.
type Store struct {
	db    *sql.DB
	keys  *secret.Keyring
	d     Dialect
	locks keyedLocks // in-process locks, without RowLocks
	sqls  sync.Map   // ?-query -> the dialect's query
	stmts sync.Map   // dialect's query -> *sql.Stmt, prepared once

	closeOnce sync.Once
	closeErr  error
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Resealer = (*Store)(nil)
)

// New returns the store on db, whose schema is up to date; keys seals
// every token written and opens every token read.
func New(db *sql.DB, keys *secret.Keyring, d Dialect) *Store {
	return &Store{db: db, keys: keys, d: d}
}

// DB is the underlying pool, for a backend's own checks and tests.
func (s *Store) DB() *sql.DB { return s.db }

// Ping runs a trivial query: a pool's PingContext may be satisfied by an
// idle connection without a round trip, a query is not.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close closes the database. Later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stmts.Range(func(_, v any) bool {
			_ = v.(*sql.Stmt).Close()
			return true
		})
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txKey carries, in the context handed to a lock callback, the transaction
// that holds a row lock (RowLocks dialects).
type txKey struct{ s *Store }

// q returns the lock transaction when ctx carries one of this store (calls
// made inside a lock callback then see and update the locked row instead
// of queueing behind their own lock), the pool otherwise; either way with
// the dialect's placeholders.
func (s *Store) q(ctx context.Context) querier {
	if tx, ok := ctx.Value(txKey{s}).(*sql.Tx); ok {
		return dialected{s, tx}
	}
	return dialected{s, s.db}
}

// inTx runs fn in a transaction: the lock transaction when ctx carries one
// (which its owner commits), a new one otherwise. On SQLite every BEGIN
// takes the write lock at once (the backend opens with _txlock=immediate).
func (s *Store) inTx(ctx context.Context, fn func(q querier) error) error {
	if tx, ok := ctx.Value(txKey{s}).(*sql.Tx); ok {
		return fn(dialected{s, tx})
	}
	return s.runTx(ctx, s.db, fn)
}

// runTx runs fn in a new transaction of b (the pool or one connection)
// and commits it when fn succeeds.
func (s *Store) runTx(ctx context.Context, b interface {
	BeginTx(context.Context, *sql.TxOptions) (*sql.Tx, error)
}, fn func(q querier) error) error {
	tx, err := b.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(dialected{s, tx}); err != nil {
		return err
	}
	return tx.Commit()
}

// durable runs fn in a transaction whose commit survives a power cut:
// for writes of tokens Bitrix24 has already replaced (a refresh spends the
// old refresh token upstream), which cannot be fetched again if the write
// is lost. Other writes (sessions, history) take the faster commit: a
// crash of the process loses none of them, a crash of the machine at most
// the last second's.
func (s *Store) durable(ctx context.Context, fn func(q querier) error) error {
	if s.d.durableOn == "" || ctx.Value(txKey{s}) != nil {
		return s.inTx(ctx, fn)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, s.d.durableOn); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), s.d.durableOff); err != nil {
			// A connection left durable is only slower; drop it anyway.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return s.runTx(ctx, conn, fn)
}

// dialected rewrites each query for the dialect and runs it as a statement
// prepared once per store (database/sql prepares it again only on a
// connection that has not seen it): parsing and planning the same few
// dozen queries on every request was a visible share of a tab view.
type dialected struct {
	s *Store
	q querier
}

// stmt returns the prepared statement of query, in the transaction when q
// is one; nil when preparing fails (the query then runs unprepared and
// reports its own error).
func (d dialected) stmt(ctx context.Context, query string) *sql.Stmt {
	query = d.s.sql(query)
	tx, inTx := d.q.(*sql.Tx)
	v, ok := d.s.stmts.Load(query)
	if !ok && inTx {
		// Preparing on the pool would wait for a second connection, which
		// a pool of one (":memory:") never has while the transaction holds
		// it: the transaction runs the query unprepared.
		return nil
	}
	if !ok {
		st, err := d.s.db.PrepareContext(ctx, query)
		if err != nil {
			return nil
		}
		if v, ok = d.s.stmts.LoadOrStore(query, st); ok {
			_ = st.Close()
		}
	}
	st := v.(*sql.Stmt)
	if inTx {
		return tx.StmtContext(ctx, st)
	}
	return st
}

// target is where query runs: its prepared statement when there is one,
// else the querier itself, with the query in the dialect's placeholders.
func (d dialected) target(ctx context.Context, query string) (querier, string) {
	if st := d.stmt(ctx, query); st != nil {
		return prepared{st}, ""
	}
	return d.q, d.s.sql(query)
}

func (d dialected) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	q, query := d.target(ctx, query)
	return q.ExecContext(ctx, query, args...)
}

func (d dialected) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q, query := d.target(ctx, query)
	return q.QueryContext(ctx, query, args...)
}

func (d dialected) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	q, query := d.target(ctx, query)
	return q.QueryRowContext(ctx, query, args...)
}

// prepared runs its statement whatever query it is handed.
type prepared struct{ st *sql.Stmt }

func (p prepared) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return p.st.ExecContext(ctx, args...)
}

func (p prepared) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return p.st.QueryContext(ctx, args...)
}

func (p prepared) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return p.st.QueryRowContext(ctx, args...)
}

// sql is a query in the dialect's placeholders, rewritten once per text.
func (s *Store) sql(query string) string {
	if !s.d.Numbered {
		return query
	}
	if v, ok := s.sqls.Load(query); ok {
		return v.(string)
	}
	q := s.d.rebind(query)
	s.sqls.Store(query, q)
	return q
}

// rebind turns ? placeholders into $1, $2... for Numbered dialects (no
// query here has a ? inside a literal).
func (d Dialect) rebind(query string) string {
	if !d.Numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// oneRow checks a write meant to change one row; what prefixes its errors.
// When it changed none: without rowQuery that is store.ErrNotFound; with
// it, rowQuery (args) tells a missing row (ErrNotFound) from a row that
// no longer matched, a lost race (ErrConflict).
func (s *Store) oneRow(ctx context.Context, what string, res sql.Result, err error, rowQuery string, args ...any) error {
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	switch {
	case err != nil:
	case n > 0:
		return nil
	case rowQuery == "":
		err = store.ErrNotFound
	default:
		if err = s.exists(ctx, s.q(ctx), rowQuery, args...); err == nil {
			err = store.ErrConflict
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// exists returns nil when query finds a row and store.ErrNotFound when not.
func (s *Store) exists(ctx context.Context, q querier, query string, args ...any) error {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// storedOrNow is t, or now when t is zero, as the database stores it.
func (s *Store) storedOrNow(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return s.stored(t)
}

// t is a time as a query parameter.
func (s *Store) t(t time.Time) any { return s.d.time(t) }

func (d Dialect) time(t time.Time) any {
	if d.Millis {
		return t.UnixMilli()
	}
	return t.Truncate(time.Microsecond).UTC()
}

// nt is t with the zero time as NULL ("not set").
func (s *Store) nt(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.t(t)
}

// stored returns t as a round trip through the database gives it back
// (milliseconds or microseconds, UTC), so values handed back to callers
// equal what a later read returns.
func (s *Store) stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	if s.d.Millis {
		return time.UnixMilli(t.UnixMilli()).UTC()
	}
	return t.Truncate(time.Microsecond).UTC()
}

// tm scans a stored time, whatever the dialect stored: unix milliseconds,
// a timestamp, or NULL (the zero time). Times come back in UTC.
func tm(t *time.Time) sql.Scanner { return timeScanner{t} }

type timeScanner struct{ t *time.Time }

func (ts timeScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*ts.t = time.Time{}
	case int64:
		*ts.t = time.UnixMilli(v).UTC()
	case time.Time:
		*ts.t = v.UTC()
	default:
		return errors.New("store: unexpected time value")
	}
	return nil
}

// portalAAD and sessionAAD bind each ciphertext to its row and column.
func portalAAD(memberID, column string) string { return "portals|" + memberID + "|" + column }

func sessionAAD(lookup, column string) string { return "sessions|" + lookup + "|" + column }

// Migrate applies the migrations in fsys (migrations/NNNN_name.sql) that
// schema_migrations does not list yet, all in one transaction, so
// instances that start together serialize (on the advisory lock, or on
// SQLite's write lock) and each later one finds nothing to do.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect) error {
	steps, err := store.LoadMigrations(fsys)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{d.migrationLock, d.migrationsTable} {
		if q == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
	}
	record := d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`)
	if err := store.ApplyMigrations(ctx, tx, steps, func(m store.Migration) error {
		_, err := tx.ExecContext(ctx, record, m.Version, m.Name, d.time(time.Now()))
		return err
	}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}
