package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// CreateSession implements store.Store. The session starts at TokenVersion
// 1 and CreatedAt defaults to now; s is updated with the stored values.
// ErrNotFound when the portal is unknown or uninstalled.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session) error {
	if sess.ID == "" {
		return errors.New("store: create session: empty id")
	}
	if sess.ExpiresAt.IsZero() {
		return errors.New("store: create session: no expiry")
	}
	names, err := json.Marshal(nonNilNames(sess.ContactNames))
	if err != nil {
		return fmt.Errorf("store: create session: contact names: %w", err)
	}
	created := s.storedOrNow(sess.CreatedAt)
	lookup := s.keys.Lookup(sess.ID)

	// Insert through a select of the portal, so a session can only be
	// created for a portal that is installed at that moment.
	res, err := s.q(ctx).ExecContext(ctx, `
		INSERT INTO sessions (id_lookup, member_id, user_id, lead_id, lead_title, lang,
			access_token, refresh_token, token_version, created_at, expires_at, user_name, contact_names)
		SELECT ?, member_id, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?
		FROM portals
		WHERE member_id = ? AND uninstalled_at IS NULL`+s.d.forShare,
		lookup, sess.UserID, sess.LeadID, sess.LeadTitle, sess.Lang,
		s.keys.Seal(sess.AccessToken, sessionAAD(lookup, "access_token")),
		s.keys.Seal(sess.RefreshToken, sessionAAD(lookup, "refresh_token")),
		s.t(created), s.t(sess.ExpiresAt), sess.UserName, string(names), sess.MemberID)
	if err := s.oneRow(ctx, fmt.Sprintf("store: create session for portal %q (not installed when not found)", sess.MemberID), res, err, ""); err != nil {
		return err
	}
	sess.TokenVersion = 1
	sess.CreatedAt = created
	sess.ExpiresAt = s.stored(sess.ExpiresAt)
	return nil
}

// Session implements store.Store. Errors never include the raw id, which is
// a bearer reference to the user's tokens.
func (s *Store) Session(ctx context.Context, id string, now time.Time) (*store.Session, error) {
	lookup := s.keys.Lookup(id)
	sess := store.Session{ID: id}
	var access, refresh, names string
	err := s.q(ctx).QueryRowContext(ctx, `
		SELECT s.member_id, s.user_id, s.lead_id, s.lead_title, s.lang,
			s.access_token, s.refresh_token, s.token_version, s.created_at, s.expires_at,
			s.user_name, s.contact_names
		FROM sessions s
		JOIN portals p ON p.member_id = s.member_id
		WHERE s.id_lookup = ? AND s.expires_at > ? AND p.uninstalled_at IS NULL`,
		lookup, s.t(now),
	).Scan(&sess.MemberID, &sess.UserID, &sess.LeadID, &sess.LeadTitle, &sess.Lang,
		&access, &refresh, &sess.TokenVersion, tm(&sess.CreatedAt), tm(&sess.ExpiresAt),
		&sess.UserName, &names)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: session: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: session: %w", err)
	}
	if err := json.Unmarshal([]byte(names), &sess.ContactNames); err != nil {
		return nil, fmt.Errorf("store: session of portal %q: contact names: %w", sess.MemberID, err)
	}
	if len(sess.ContactNames) == 0 {
		sess.ContactNames = nil // none read: nil, as the caller passed it
	}
	if sess.AccessToken, err = s.keys.Open(access, sessionAAD(lookup, "access_token")); err != nil {
		return nil, fmt.Errorf("store: session of portal %q: open access_token: %w", sess.MemberID, err)
	}
	if sess.RefreshToken, err = s.keys.Open(refresh, sessionAAD(lookup, "refresh_token")); err != nil {
		return nil, fmt.Errorf("store: session of portal %q: open refresh_token: %w", sess.MemberID, err)
	}
	return &sess, nil
}

// UpdateSessionTokens implements store.Store; ErrNotFound when the session
// does not exist (any more).
func (s *Store) UpdateSessionTokens(ctx context.Context, id string, version int64, access, refresh secret.String) error {
	lookup := s.keys.Lookup(id)
	var res sql.Result
	err := s.durable(ctx, func(q querier) (err error) {
		res, err = q.ExecContext(ctx, `
		UPDATE sessions
		SET access_token = ?, refresh_token = ?, token_version = token_version + 1
		WHERE id_lookup = ? AND token_version = ?`,
			s.keys.Seal(access, sessionAAD(lookup, "access_token")),
			s.keys.Seal(refresh, sessionAAD(lookup, "refresh_token")),
			lookup, version)
		return err
	})
	return s.oneRow(ctx, "store: update session tokens", res, err, `SELECT 1 FROM sessions WHERE id_lookup = ?`, lookup)
}

// DeleteExpiredSessions implements store.Store.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	return s.deleteRows(ctx, "store: delete expired sessions", `DELETE FROM sessions WHERE expires_at <= ?`, s.t(now))
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.q(ctx).ExecContext(ctx, `DELETE FROM sessions WHERE id_lookup = ?`, s.keys.Lookup(id)); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}
