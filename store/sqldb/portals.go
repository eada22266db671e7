package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// SavePortal implements store.Store.
func (s *Store) SavePortal(ctx context.Context, p *store.Portal) error {
	if p.MemberID == "" {
		return errors.New("store: save portal: empty member id")
	}
	now := s.stored(time.Now())
	access := s.keys.Seal(p.AccessToken, portalAAD(p.MemberID, "access_token"))
	refresh := s.keys.Seal(p.RefreshToken, portalAAD(p.MemberID, "refresh_token"))

	// One upsert, so two concurrent installs of the same portal cannot both
	// see "no row" and collide. installed_at restarts only when the row was
	// uninstalled: a plain re-save (scope change, new admin) keeps it.
	var version int64
	err := s.durable(ctx, func(q querier) error {
		return q.QueryRowContext(ctx, `
		INSERT INTO portals (member_id, domain, rest_endpoint, oauth_server, scope, status,
			app_token_hash, installed_by, lang, access_token, refresh_token, token_expiry,
			installed_at, updated_at, uninstalled_at, version, app_id, app_code)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 1, ?, ?)
		ON CONFLICT (member_id) DO UPDATE SET
			domain         = excluded.domain,
			rest_endpoint  = excluded.rest_endpoint,
			oauth_server   = excluded.oauth_server,
			scope          = excluded.scope,
			status         = excluded.status,
			app_token_hash = excluded.app_token_hash,
			installed_by   = excluded.installed_by,
			lang           = excluded.lang,
			access_token   = excluded.access_token,
			refresh_token  = excluded.refresh_token,
			token_expiry   = excluded.token_expiry,
			installed_at   = CASE WHEN portals.uninstalled_at IS NULL
			                      THEN portals.installed_at ELSE excluded.installed_at END,
			updated_at     = excluded.updated_at,
			uninstalled_at = NULL,
			problem        = '',
			problem_at     = NULL,
			app_id         = excluded.app_id,
			app_code       = excluded.app_code,
			uninstall_reported_at = NULL,
			uninstall_clean       = FALSE,
			version        = portals.version + 1
		RETURNING installed_at, version`,
			p.MemberID, p.Domain, p.RESTEndpoint, p.OAuthServer, p.Scope, p.Status,
			p.AppTokenHash, p.InstalledBy, p.Lang, access, refresh, s.nt(p.TokenExpiry),
			s.t(now), s.t(now), p.AppID, p.AppCode,
		).Scan(tm(&p.InstalledAt), &version)
	})
	if err != nil {
		return fmt.Errorf("store: save portal %q: %w", p.MemberID, err)
	}
	p.TokenExpiry = s.stored(p.TokenExpiry)
	p.UpdatedAt = now
	p.UninstalledAt = time.Time{}
	p.Version = version
	p.Problem, p.ProblemAt = "", time.Time{}
	p.UninstallReportedAt, p.UninstallClean = time.Time{}, false
	return nil
}

// Portal implements store.Store.
func (s *Store) Portal(ctx context.Context, memberID string) (*store.Portal, error) {
	var (
		p               store.Portal
		access, refresh string
	)
	err := s.q(ctx).QueryRowContext(ctx, `
		SELECT member_id, domain, rest_endpoint, oauth_server, scope, status,
			app_token_hash, installed_by, lang, access_token, refresh_token, token_expiry,
			installed_at, updated_at, uninstalled_at, version, problem, problem_at, app_id, app_code,
			uninstall_reported_at, uninstall_clean
		FROM portals
		WHERE member_id = ?`, memberID,
	).Scan(&p.MemberID, &p.Domain, &p.RESTEndpoint, &p.OAuthServer, &p.Scope, &p.Status,
		&p.AppTokenHash, &p.InstalledBy, &p.Lang, &access, &refresh, tm(&p.TokenExpiry),
		tm(&p.InstalledAt), tm(&p.UpdatedAt), tm(&p.UninstalledAt), &p.Version, &p.Problem, tm(&p.ProblemAt), &p.AppID, &p.AppCode,
		tm(&p.UninstallReportedAt), &p.UninstallClean)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: portal %q: %w", memberID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: portal %q: %w", memberID, err)
	}
	if p.AccessToken, err = s.keys.Open(access, portalAAD(memberID, "access_token")); err != nil {
		return nil, fmt.Errorf("store: portal %q: open access_token: %w", memberID, err)
	}
	if p.RefreshToken, err = s.keys.Open(refresh, portalAAD(memberID, "refresh_token")); err != nil {
		return nil, fmt.Errorf("store: portal %q: open refresh_token: %w", memberID, err)
	}
	return &p, nil
}

// UpdatePortalTokens implements store.Store. It returns ErrNotFound when the
// portal has no row, and ErrConflict as well when the portal is uninstalled:
// tokens that arrive after an uninstall must not bring the wiped ones back.
func (s *Store) UpdatePortalTokens(ctx context.Context, memberID string, version int64, access, refresh secret.String, expiry time.Time) error {
	var res sql.Result
	err := s.durable(ctx, func(q querier) (err error) {
		res, err = q.ExecContext(ctx, `
		UPDATE portals
		SET access_token = ?, refresh_token = ?, token_expiry = ?,
			updated_at = ?, version = version + 1
		WHERE member_id = ? AND version = ? AND uninstalled_at IS NULL`,
			s.keys.Seal(access, portalAAD(memberID, "access_token")),
			s.keys.Seal(refresh, portalAAD(memberID, "refresh_token")),
			s.nt(expiry), s.t(time.Now()), memberID, version)
		return err
	})
	return s.oneRow(ctx, fmt.Sprintf("store: update portal %q tokens", memberID), res, err,
		`SELECT 1 FROM portals WHERE member_id = ?`, memberID)
}

// UninstallPortal implements store.Store. A repeat keeps the first
// uninstall time and changes nothing (not even Version) unless clean asks
// for more than the first call did. ErrNotFound when the portal has no row.
func (s *Store) UninstallPortal(ctx context.Context, memberID string, clean bool, at time.Time) error {
	err := s.inTx(ctx, func(q querier) error {
		// The read decides the write, so the row is locked before the read:
		// FOR UPDATE on PostgreSQL, which also waits for a CreateSession in
		// flight (FOR SHARE) whose session the DELETE below then sees;
		// SQLite's immediate transaction holds the write lock from BEGIN.
		var uninstalled, blank bool
		err := q.QueryRowContext(ctx, `
			SELECT uninstalled_at IS NOT NULL,
				domain = '' AND rest_endpoint = '' AND oauth_server = '' AND scope = ''
				AND status = '' AND lang = '' AND installed_by = 0 AND app_id = 0 AND app_code = ''
			FROM portals
			WHERE member_id = ?`+s.d.forUpdate, memberID).Scan(&uninstalled, &blank)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		switch {
		case clean && !blank:
			// Keep only what verifies a repeated uninstall event: member_id,
			// app_token_hash and the times.
			_, err = q.ExecContext(ctx, `
				UPDATE portals
				SET uninstalled_at = COALESCE(uninstalled_at, ?), uninstall_reported_at = NULL,
					access_token = '', refresh_token = '', token_expiry = NULL,
					domain = '', rest_endpoint = '', oauth_server = '', scope = '',
					status = '', lang = '', installed_by = 0, app_id = 0, app_code = '',
					updated_at = ?, version = version + 1
				WHERE member_id = ?`, s.t(at), s.t(at), memberID)
		case !uninstalled:
			_, err = q.ExecContext(ctx, `
				UPDATE portals
				SET uninstalled_at = ?, uninstall_reported_at = NULL,
					access_token = '', refresh_token = '', token_expiry = NULL,
					updated_at = ?, version = version + 1
				WHERE member_id = ?`, s.t(at), s.t(at), memberID)
		}
		if err != nil {
			return err
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM sessions WHERE member_id = ?`, memberID); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
		return s.endBulkRuns(ctx, q, memberID, clean, at)
	})
	if err != nil {
		return fmt.Errorf("store: uninstall portal %q: %w", memberID, err)
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
	return s.oneRow(ctx, fmt.Sprintf("store: move portal %q", memberID), res, err,
		`SELECT 1 FROM portals WHERE member_id = ?`, memberID)
}

// FlagPortal implements store.Store.
func (s *Store) FlagPortal(ctx context.Context, memberID, problem string, at time.Time) error {
	when := s.nt(at)
	if problem == "" {
		when = nil
	}
	res, err := s.q(ctx).ExecContext(ctx, `UPDATE portals SET problem = ?, problem_at = ? WHERE member_id = ?`,
		problem, when, memberID)
	return s.oneRow(ctx, fmt.Sprintf("store: flag portal %q", memberID), res, err, "")
}

// ReportUninstall implements store.Store.
func (s *Store) ReportUninstall(ctx context.Context, memberID string, clean bool, at time.Time) error {
	res, err := s.q(ctx).ExecContext(ctx, `
		UPDATE portals
		SET uninstall_reported_at = COALESCE(uninstall_reported_at, ?),
			uninstall_clean = (uninstall_clean OR ?)
		WHERE member_id = ? AND uninstalled_at IS NULL`,
		s.t(at), clean, memberID)
	return s.oneRow(ctx, fmt.Sprintf("store: report uninstall of %q", memberID), res, err, "")
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
