package sqldb

import (
	"context"
	"fmt"
	"time"

	"github.com/b24apps/leadcontacts/store"
)

// ReportUninstall implements store.Store.
func (s *Store) ReportUninstall(ctx context.Context, memberID string, clean bool, at time.Time) error {
	res, err := s.q(ctx).ExecContext(ctx, `
		UPDATE portals
		SET uninstall_reported_at = COALESCE(uninstall_reported_at, ?),
			uninstall_clean = (uninstall_clean OR ?)
		WHERE member_id = ? AND uninstalled_at IS NULL`,
		s.t(at), clean, memberID)
	if err != nil {
		return fmt.Errorf("store: report uninstall of %q: %w", memberID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: report uninstall of %q: %w", memberID, err)
	} else if n == 0 {
		return fmt.Errorf("store: report uninstall of %q: %w", memberID, store.ErrNotFound)
	}
	return nil
}

// ClearUninstallReport implements store.Store.
func (s *Store) ClearUninstallReport(ctx context.Context, memberID string) error {
	_, err := s.q(ctx).ExecContext(ctx, `
		UPDATE portals SET uninstall_reported_at = NULL, uninstall_clean = FALSE
		WHERE member_id = ? AND uninstall_reported_at IS NOT NULL`, memberID)
	if err != nil {
		return fmt.Errorf("store: clear uninstall report of %q: %w", memberID, err)
	}
	return nil
}

// ReportedUninstalls implements store.Store.
func (s *Store) ReportedUninstalls(ctx context.Context, before time.Time) ([]store.UninstallReport, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `
		SELECT member_id, uninstall_clean FROM portals
		WHERE uninstall_reported_at <= ? AND uninstalled_at IS NULL
		ORDER BY uninstall_reported_at`, s.t(before))
	if err != nil {
		return nil, fmt.Errorf("store: reported uninstalls: %w", err)
	}
	defer rows.Close()
	var out []store.UninstallReport
	for rows.Next() {
		var r store.UninstallReport
		if err := rows.Scan(&r.MemberID, &r.Clean); err != nil {
			return nil, fmt.Errorf("store: reported uninstalls: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RecentTokens implements store.Store.
func (s *Store) RecentTokens(ctx context.Context, memberID string, limit int, now time.Time) ([]store.TokenPair, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `
		SELECT id_lookup, access_token, refresh_token FROM sessions
		WHERE member_id = ? AND expires_at > ?
		ORDER BY created_at DESC LIMIT ?`, memberID, s.t(now), limit)
	if err != nil {
		return nil, fmt.Errorf("store: recent tokens of %q: %w", memberID, err)
	}
	defer rows.Close()
	var out []store.TokenPair
	for rows.Next() {
		var lookup, access, refresh string
		if err := rows.Scan(&lookup, &access, &refresh); err != nil {
			return nil, fmt.Errorf("store: recent tokens of %q: %w", memberID, err)
		}
		var tp store.TokenPair
		if tp.Access, err = s.keys.Open(access, sessionAAD(lookup, "access_token")); err != nil {
			return nil, fmt.Errorf("store: recent tokens of %q: %w", memberID, err)
		}
		if tp.Refresh, err = s.keys.Open(refresh, sessionAAD(lookup, "refresh_token")); err != nil {
			return nil, fmt.Errorf("store: recent tokens of %q: %w", memberID, err)
		}
		out = append(out, tp)
	}
	return out, rows.Err()
}
