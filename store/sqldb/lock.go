package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// WithPortalLock runs fn while holding the portal's lock, so that only one
// caller at a time refreshes the installer's token (a refresh spends a
// single-use refresh token; the loser must wait and then re-read).
//
// With RowLocks (PostgreSQL) the lock is SELECT ... FOR UPDATE on the
// portal's row in a transaction, which serializes every instance sharing
// the database. Store calls made with the ctx handed to fn run inside that
// transaction (with any other context they would queue behind the lock
// and deadlock); it commits when fn returns, whatever fn returns, and a
// store call that fails with an SQL error aborts it: later calls fail and
// the returned error says the commit failed. The lock and one connection
// are held until fn returns, so keep fn short and bound its network calls.
//
// Otherwise (SQLite, one process) the lock is an in-process mutex and no
// transaction is held while fn runs, so fn may use the store freely.
//
// Waiting ends with ctx. A nested call with the ctx handed to fn runs at
// once. ErrNotFound when the portal has no row; fn's error is returned as
// is.
func (s *Store) WithPortalLock(ctx context.Context, memberID string, fn func(ctx context.Context) error) error {
	return s.withLock(ctx, "portal\x00"+memberID, `SELECT 1 FROM portals WHERE member_id = ?`, memberID, fn,
		func(err error) error { return fmt.Errorf("store: lock portal %q: %w", memberID, err) })
}

// WithSessionLock is WithPortalLock for one frame session (by raw id): it
// serializes refreshes of that user's tokens. ErrNotFound when the session
// has no row.
func (s *Store) WithSessionLock(ctx context.Context, id string, fn func(ctx context.Context) error) error {
	lookup := s.keys.Lookup(id)
	return s.withLock(ctx, "session\x00"+lookup, `SELECT 1 FROM sessions WHERE id_lookup = ?`, lookup, fn,
		func(err error) error { return fmt.Errorf("store: lock session: %w", err) })
}

// withLock locks the row rowSQL selects (by arg) and runs fn. Its own
// errors go through wrap; fn's error is returned unchanged.
func (s *Store) withLock(ctx context.Context, key, rowSQL, arg string, fn func(ctx context.Context) error, wrap func(error) error) error {
	if s.d.RowLocks {
		return s.withRowLock(ctx, rowSQL+s.d.forUpdate, arg, fn, wrap)
	}
	if ctx.Value(heldKey{s, key}) != nil {
		return fn(ctx)
	}
	unlock, err := s.locks.lock(ctx, key)
	if err != nil {
		return fmt.Errorf("store: wait for lock: %w", err)
	}
	defer unlock()
	// Checked under the lock, as SELECT ... FOR UPDATE does.
	if err := s.exists(ctx, s.q(ctx), rowSQL, arg); err != nil {
		return wrap(err)
	}
	return fn(context.WithValue(ctx, heldKey{s, key}, true))
}

// heldKey marks, in the context handed to fn, an in-process lock its
// caller holds.
type heldKey struct {
	s   *Store
	key string
}

// withRowLock runs fn inside a transaction holding the row lock lockSQL
// takes.
func (s *Store) withRowLock(ctx context.Context, lockSQL, arg string, fn func(ctx context.Context) error, wrap func(error) error) error {
	if tx, ok := ctx.Value(txKey{s}).(*sql.Tx); ok {
		// Already in a lock transaction: take this row lock too and let the
		// outer call commit.
		if err := s.exists(ctx, dialected{s, tx}, lockSQL, arg); err != nil {
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
	if err := s.exists(ctx, dialected{s, tx}, lockSQL, arg); err != nil {
		return wrap(err)
	}
	fnErr := fn(context.WithValue(ctx, txKey{s}, tx))
	if err := tx.Commit(); err != nil {
		// fn's writes are lost: say so even when fn failed too.
		return errors.Join(fnErr, wrap(fmt.Errorf("commit: %w", err)))
	}
	return fnErr
}

// keyedLocks is a set of mutexes created on demand per key and dropped when
// nobody holds or waits for them, so the map does not grow with every portal
// and session ever locked.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	// sem holds one token while the lock is held; a channel rather than a
	// sync.Mutex so that waiting can give up when the context ends.
	sem  chan struct{}
	refs int // holders plus waiters, guarded by keyedLocks.mu
}

func (k *keyedLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{sem: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.sem <- struct{}{}:
		return func() {
			<-l.sem
			k.release(key, l)
		}, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *keyedLocks) release(key string, l *keyedLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.m, key)
	}
}
