package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// lockWait bounds every wait in the lock tests, so that a deadlock fails
// the test instead of hanging it.
const lockWait = 10 * time.Second

// newLockTest opens a store holding the portal m-lock and the given
// sessions of it, with a context that ends after lockWait.
func newLockTest(t *testing.T, open func(t *testing.T) store.Store, sessionIDs ...string) (lockingStore, context.Context) {
	t.Helper()
	s := openWithPortal(t, open, "m-lock", sessionIDs...)
	l, ok := s.(lockingStore)
	require.True(t, ok, "%T has no WithPortalLock/WithSessionLock", s)
	ctx, cancel := context.WithTimeout(t.Context(), lockWait)
	t.Cleanup(cancel)
	return l, ctx
}

// lockingStore is a store with the Locker methods, as Run requires.
type lockingStore interface {
	store.Store
	Locker
}

// lockFunc is one of WithPortalLock or WithSessionLock with its key bound.
type lockFunc func(ctx context.Context, fn func(ctx context.Context) error) error

// requireSerializes checks that lockA and lockB, which should take the
// same lock, never run their callbacks at the same time: while the first
// callback runs, the second caller waits, and it enters only after the
// first callback has returned. It also checks that the second callback
// sees what the first wrote (write, then check).
func requireSerializes(t *testing.T, lockA, lockB lockFunc, write, check func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), lockWait)
	defer cancel()

	var (
		mu      sync.Mutex
		events  []string
		entered = make(chan struct{})
		release = make(chan struct{})
		bIn     = make(chan struct{})
		errA    = make(chan error, 1)
		errB    = make(chan error, 1)
	)
	record := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	go func() {
		errA <- lockA(ctx, func(ctx context.Context) error {
			record("A enters")
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := write(ctx); err != nil {
				return err
			}
			record("A leaves")
			return nil
		})
	}()
	select {
	case <-entered:
	case err := <-errA:
		t.Fatalf("first locker failed before entering: %v", err)
	case <-ctx.Done():
		t.Fatal("first locker never entered")
	}

	go func() {
		errB <- lockB(ctx, func(ctx context.Context) error {
			record("B enters")
			close(bIn)
			return check(ctx)
		})
	}()
	// While A holds the lock, B must not get in.
	select {
	case <-bIn:
		t.Fatal("second locker entered while the first held the lock")
	case err := <-errB:
		t.Fatalf("second locker returned while the first held the lock: %v", err)
	case <-time.After(150 * time.Millisecond):
	}

	close(release)
	for name, ch := range map[string]chan error{"first": errA, "second": errB} {
		select {
		case err := <-ch:
			require.NoError(t, err, "%s locker", name)
		case <-ctx.Done():
			t.Fatalf("%s locker did not finish: deadlock?", name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"A enters", "A leaves", "B enters"}, events)
}

func testPortalLockSerializes(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := newLockTest(t, open)
	requirePortalLockSerializes(t, s, s)

	// Other portals are not blocked by a held lock.
	mustSavePortal(t, s, "m-other")
	require.NoError(t, s.WithPortalLock(ctx, "m-lock", func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() {
			done <- s.WithPortalLock(ctx, "m-other", func(context.Context) error { return nil })
		}()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return errors.New("lock on another portal waited for this one")
		}
	}))
}

// Store calls made with the ctx handed to fn must work, including writes
// to the locked row, and persist once fn returns.
func testPortalLockStoreCalls(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := newLockTest(t, open)

	err := s.WithPortalLock(ctx, "m-lock", func(ctx context.Context) error {
		p, err := s.Portal(ctx, "m-lock")
		if err != nil {
			return err
		}
		if err := s.UpdatePortalTokens(ctx, "m-lock", p.Version, secret.New("access-in-lock"), secret.New("refresh-in-lock"), time.Now()); err != nil {
			return err
		}
		if err := s.UpdatePortalTokens(ctx, "m-lock", p.Version, secret.New("x"), secret.New("y"), time.Now()); !errors.Is(err, store.ErrConflict) {
			return errors.New("stale compare-and-swap inside the lock did not conflict")
		}
		if err := s.CreateSession(ctx, newSession("sess-in-lock", "m-lock")); err != nil {
			return err
		}
		got, err := s.Portal(ctx, "m-lock")
		if err != nil {
			return err
		}
		if got.AccessToken.Reveal() != "access-in-lock" {
			return errors.New("read inside the lock does not see the write")
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, "access-in-lock", mustPortal(t, s, "m-lock").AccessToken.Reveal())
	mustSession(t, s, "sess-in-lock")

	// Uninstall inside the lock (an uninstall event racing a refresh).
	require.NoError(t, s.WithPortalLock(ctx, "m-lock", func(ctx context.Context) error {
		return s.UninstallPortal(ctx, "m-lock", false, time.Now())
	}))
	require.False(t, mustPortal(t, s, "m-lock").Active())
}

func testPortalLockErrors(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := newLockTest(t, open)

	called := false
	err := s.WithPortalLock(ctx, "m-nobody", func(context.Context) error { called = true; return nil })
	require.ErrorIs(t, err, store.ErrNotFound)
	require.False(t, called, "fn ran without a portal row")

	// fn's error comes back as is; writes fn made before failing persist,
	// as each store call is complete on its own.
	p := mustPortal(t, s, "m-lock")
	boom := errors.New("boom")
	err = s.WithPortalLock(ctx, "m-lock", func(ctx context.Context) error {
		if err := s.UpdatePortalTokens(ctx, "m-lock", p.Version, secret.New("access-kept"), secret.New("refresh-kept"), time.Now()); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, "refresh-kept", mustPortal(t, s, "m-lock").RefreshToken.Reveal())

	// The lock was released after the error.
	require.NoError(t, s.WithPortalLock(ctx, "m-lock", func(context.Context) error { return nil }))
}

// A nested lock with the ctx handed to fn must not wait for itself.
func testLockNested(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := newLockTest(t, open, "sess-lock")

	inner := 0
	err := s.WithPortalLock(ctx, "m-lock", func(ctx context.Context) error {
		return s.WithPortalLock(ctx, "m-lock", func(ctx context.Context) error {
			return s.WithSessionLock(ctx, "sess-lock", func(ctx context.Context) error {
				inner++
				return s.UpdateSessionTokens(ctx, "sess-lock", 1, secret.New("a"), secret.New("r"))
			})
		})
	})
	require.NoError(t, err)
	require.Equal(t, 1, inner)
	require.EqualValues(t, 2, mustSession(t, s, "sess-lock").TokenVersion)
}

// A caller waiting for the lock gives up when its context ends, and the
// lock stays usable.
func testPortalLockContextEnds(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := newLockTest(t, open)

	err := s.WithPortalLock(ctx, "m-lock", func(context.Context) error {
		short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancelShort()
		called := false
		// Not the ctx handed to fn: this caller is someone else, waiting.
		err := s.WithPortalLock(short, "m-lock", func(context.Context) error { called = true; return nil })
		if err == nil || called {
			return errors.New("waiter got in while the lock was held")
		}
		if short.Err() == nil {
			return errors.New("waiter failed before its context ended: " + err.Error())
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.WithPortalLock(ctx, "m-lock", func(context.Context) error { return nil }))
}

func testSessionLockSerializes(t *testing.T, open func(t *testing.T) store.Store) {
	s, _ := newLockTest(t, open, "sess-lock")
	requireSessionLockSerializes(t, s, s)
}

// testLocksAcrossInstances: two Store values with their own pools on one
// database take turns, the point of row locks.
func testLocksAcrossInstances(t *testing.T, open func(t *testing.T) store.Store) {
	a, _ := newLockTest(t, open, "sess-lock")
	b, ok := open(t).(lockingStore)
	require.True(t, ok)
	t.Run("portal", func(t *testing.T) { requirePortalLockSerializes(t, a, b) })
	t.Run("session", func(t *testing.T) { requireSessionLockSerializes(t, a, b) })
}

// requirePortalLockSerializes is the refresh pattern on the portal m-lock,
// a holding the lock, then b: the first holder refreshes, the second
// re-reads under the lock and sees the new pair instead of spending the
// old one. a and b may be one store.
func requirePortalLockSerializes(t *testing.T, a, b lockingStore) {
	t.Helper()
	p := mustPortal(t, a, "m-lock")
	lock := func(s lockingStore) lockFunc {
		return func(ctx context.Context, fn func(ctx context.Context) error) error {
			return s.WithPortalLock(ctx, "m-lock", fn)
		}
	}
	requireSerializes(t, lock(a), lock(b),
		func(ctx context.Context) error {
			return a.UpdatePortalTokens(ctx, "m-lock", p.Version, secret.New("access-A"), secret.New("refresh-A"), time.Now())
		},
		func(ctx context.Context) error {
			got, err := b.Portal(ctx, "m-lock")
			if err != nil {
				return err
			}
			if got.Version != p.Version+1 || got.RefreshToken.Reveal() != "refresh-A" {
				return errors.New("second locker did not see the first one's refresh")
			}
			return nil
		})
}

// requireSessionLockSerializes is requirePortalLockSerializes for the
// session sess-lock.
func requireSessionLockSerializes(t *testing.T, a, b lockingStore) {
	t.Helper()
	lock := func(s lockingStore) lockFunc {
		return func(ctx context.Context, fn func(ctx context.Context) error) error {
			return s.WithSessionLock(ctx, "sess-lock", fn)
		}
	}
	requireSerializes(t, lock(a), lock(b),
		func(ctx context.Context) error {
			return a.UpdateSessionTokens(ctx, "sess-lock", 1, secret.New("user-access-A"), secret.New("user-refresh-A"))
		},
		func(ctx context.Context) error {
			got, err := b.Session(ctx, "sess-lock", time.Now())
			if err != nil {
				return err
			}
			if got.TokenVersion != 2 || got.RefreshToken.Reveal() != "user-refresh-A" {
				return errors.New("second locker did not see the first one's refresh")
			}
			return nil
		})
}

func testSessionLockStoreCalls(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := newLockTest(t, open, "sess-lock")

	err := s.WithSessionLock(ctx, "sess-lock", func(ctx context.Context) error {
		sess, err := s.Session(ctx, "sess-lock", time.Now())
		if err != nil {
			return err
		}
		return s.UpdateSessionTokens(ctx, "sess-lock", sess.TokenVersion, secret.New("user-access-in-lock"), secret.New("user-refresh-in-lock"))
	})
	require.NoError(t, err)
	require.Equal(t, "user-access-in-lock", mustSession(t, s, "sess-lock").AccessToken.Reveal())
}

func testSessionLockNotFound(t *testing.T, open func(t *testing.T) store.Store) {
	s, _ := newLockTest(t, open)
	called := false
	err := s.WithSessionLock(t.Context(), "sess-nobody", func(context.Context) error { called = true; return nil })
	require.ErrorIs(t, err, store.ErrNotFound)
	require.False(t, called)
}
