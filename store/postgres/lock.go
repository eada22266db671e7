package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// WithPortalLock runs fn while a transaction holds SELECT ... FOR UPDATE on
// the portal's row, so that across every instance sharing the database only
// one refreshes the installer's token at a time: a refresh spends a
// single-use refresh token, and the instance that waited must re-read and
// use the new pair instead of spending the old one again.
//
// Store calls made with the ctx handed to fn run inside that transaction;
// with any other context they would queue behind the lock fn's caller holds
// and deadlock. The transaction commits when fn returns, whatever fn
// returns, so fn's writes persist just as they do on the SQLite backend (a
// panic rolls them back). Unlike SQLite, a store call that fails with an
// SQL error (say, a duplicate session id) aborts the whole transaction:
// later calls in fn fail, earlier writes are rolled back, and the returned
// error says the commit failed.
//
// The lock and one pooled connection are held until fn returns: keep fn
// short and bound its network calls with a timeout shorter than callers
// will wait. Waiting for the lock ends with ctx. A nested call with the ctx
// handed to fn reuses the transaction. ErrNotFound when the portal has no
// row; fn's error is returned as is.
func (s *Store) WithPortalLock(ctx context.Context, memberID string, fn func(ctx context.Context) error) error {
	return s.withLock(ctx, fn, `SELECT 1 FROM portals WHERE member_id = $1 FOR UPDATE`, memberID,
		func(err error) error { return fmt.Errorf("store: lock portal %q: %w", memberID, err) })
}

// WithSessionLock is WithPortalLock for one frame session (by raw id): it
// serializes refreshes of that user's tokens across instances. ErrNotFound
// when the session has no row.
func (s *Store) WithSessionLock(ctx context.Context, id string, fn func(ctx context.Context) error) error {
	return s.withLock(ctx, fn, `SELECT 1 FROM sessions WHERE id_lookup = $1 FOR UPDATE`, s.keys.Lookup(id),
		func(err error) error { return fmt.Errorf("store: lock session: %w", err) })
}

// withLock locks the row lockSQL selects and runs fn. Its own errors go
// through wrap; fn's error is returned unchanged.
func (s *Store) withLock(ctx context.Context, fn func(ctx context.Context) error, lockSQL, key string, wrap func(error) error) error {
	if tx, ok := ctx.Value(txKey{s}).(*sql.Tx); ok {
		// Already in a lock transaction: take this row lock too and let the
		// outer call commit.
		if err := exists(ctx, tx, lockSQL, key); err != nil {
			return wrap(err)
		}
		return fn(ctx)
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err)
	}
	// After Commit this is a no-op; it matters when the lock query fails or
	// fn panics.
	defer tx.Rollback()
	if err := exists(ctx, tx, lockSQL, key); err != nil {
		return wrap(err)
	}
	fnErr := fn(context.WithValue(ctx, txKey{s}, tx))
	if err := tx.Commit(); err != nil {
		// fn's writes are lost: say so even when fn failed too.
		return errors.Join(fnErr, wrap(fmt.Errorf("commit: %w", err)))
	}
	return fnErr
}
