package sqldb

import (
	"context"
	"fmt"
	"time"

	"github.com/b24apps/leadcontacts/store"
)

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.q(ctx).ExecContext(ctx, `DELETE FROM sessions WHERE id_lookup = ?`, s.keys.Lookup(id)); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// UpdatePortalEndpoint implements store.Store with one compare-and-swap
// UPDATE on the old endpoint, so two requests that learn of the same
// rename at once move the portal once, and a stale one cannot move it back.
func (s *Store) UpdatePortalEndpoint(ctx context.Context, memberID, from, endpoint, domain string) error {
	res, err := s.q(ctx).ExecContext(ctx, `
		UPDATE portals
		SET rest_endpoint = ?, domain = ?, updated_at = ?, version = version + 1
		WHERE member_id = ? AND rest_endpoint = ? AND uninstalled_at IS NULL`,
		endpoint, domain, s.t(time.Now()), memberID, from)
	if err != nil {
		return fmt.Errorf("store: move portal %q: %w", memberID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: move portal %q: %w", memberID, err)
	} else if n == 1 {
		return nil
	}
	if err := s.exists(ctx, s.q(ctx), `SELECT 1 FROM portals WHERE member_id = ?`, memberID); err != nil {
		return fmt.Errorf("store: move portal %q: %w", memberID, err)
	}
	return fmt.Errorf("store: move portal %q: %w", memberID, store.ErrConflict)
}

// FlagPortal implements store.Store.
func (s *Store) FlagPortal(ctx context.Context, memberID, problem string, at time.Time) error {
	when := s.nt(at)
	if problem == "" {
		when = nil
	}
	res, err := s.q(ctx).ExecContext(ctx, `UPDATE portals SET problem = ?, problem_at = ? WHERE member_id = ?`,
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
