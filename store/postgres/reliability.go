package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/b24apps/leadcontacts/store"
)

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.q(ctx).ExecContext(ctx, `DELETE FROM sessions WHERE id_lookup = $1`, s.keys.Lookup(id)); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// UpdatePortalEndpoint implements store.Store with one compare-and-swap
// UPDATE on the old endpoint, so instances that learn of the same rename at
// once move the portal once, and a stale one cannot move it back.
func (s *Store) UpdatePortalEndpoint(ctx context.Context, memberID, from, endpoint, domain string) error {
	q := s.q(ctx)
	res, err := q.ExecContext(ctx, `
		UPDATE portals
		SET rest_endpoint = $1, domain = $2, updated_at = $3, version = version + 1
		WHERE member_id = $4 AND rest_endpoint = $5 AND uninstalled_at IS NULL`,
		endpoint, domain, stored(time.Now()), memberID, from)
	if err != nil {
		return fmt.Errorf("store: move portal %q: %w", memberID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: move portal %q: %w", memberID, err)
	} else if n == 1 {
		return nil
	}
	if err := exists(ctx, q, `SELECT 1 FROM portals WHERE member_id = $1`, memberID); err != nil {
		return fmt.Errorf("store: move portal %q: %w", memberID, err)
	}
	return fmt.Errorf("store: move portal %q: %w", memberID, store.ErrConflict)
}

// FlagPortal implements store.Store.
func (s *Store) FlagPortal(ctx context.Context, memberID, problem string, at time.Time) error {
	when := nullTime(at)
	if problem == "" {
		when.Valid = false
	}
	res, err := s.q(ctx).ExecContext(ctx, `UPDATE portals SET problem = $1, problem_at = $2 WHERE member_id = $3`,
		problem, when, memberID)
	if err != nil {
		return fmt.Errorf("store: flag portal %q: %w", memberID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: flag portal %q: %w", memberID, err)
	} else if n == 0 {
		return fmt.Errorf("store: flag portal %q: %w", memberID, store.ErrNotFound)
	}
	return nil
}
