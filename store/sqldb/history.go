package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/b24apps/leadcontacts/store"
)

// SaveUndo implements store.Store. The insert selects the session row, so
// a snapshot can only exist for a live session.
func (s *Store) SaveUndo(ctx context.Context, u *store.UndoSnapshot) error {
	if u.SessionID == "" || u.ExpiresAt.IsZero() {
		return errors.New("store: save undo: empty session id or no expiry")
	}
	items, err := json.Marshal(nonNilLinks(u.Items))
	if err != nil {
		return fmt.Errorf("store: save undo: %w", err)
	}
	created := s.storedOrNow(u.CreatedAt)
	res, err := s.q(ctx).ExecContext(ctx, `
		INSERT INTO undo_snapshots (session_lookup, member_id, lead_id, user_id, items, created_at, expires_at)
		SELECT id_lookup, ?, ?, ?, ?, ?, ?
		FROM sessions
		WHERE id_lookup = ?
		ON CONFLICT (session_lookup) DO UPDATE SET
			member_id = excluded.member_id, lead_id = excluded.lead_id, user_id = excluded.user_id,
			items = excluded.items, created_at = excluded.created_at, expires_at = excluded.expires_at`,
		u.MemberID, u.LeadID, u.UserID, string(items), s.t(created), s.t(u.ExpiresAt),
		s.keys.Lookup(u.SessionID))
	if err := s.oneRow(ctx, "store: save undo (the session is gone when not found)", res, err, ""); err != nil {
		return err
	}
	u.CreatedAt = created
	u.ExpiresAt = s.stored(u.ExpiresAt)
	return nil
}

// TakeUndo implements store.Store: one DELETE ... RETURNING, so of two
// racing calls exactly one gets the snapshot.
func (s *Store) TakeUndo(ctx context.Context, sessionID string, now time.Time) (*store.UndoSnapshot, error) {
	u := store.UndoSnapshot{SessionID: sessionID}
	var items string
	err := s.q(ctx).QueryRowContext(ctx, `
		DELETE FROM undo_snapshots
		WHERE session_lookup = ?
		RETURNING member_id, lead_id, user_id, items, created_at, expires_at`,
		s.keys.Lookup(sessionID),
	).Scan(&u.MemberID, &u.LeadID, &u.UserID, &items, tm(&u.CreatedAt), tm(&u.ExpiresAt))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: take undo: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: take undo: %w", err)
	}
	if !u.ExpiresAt.After(now) {
		return nil, fmt.Errorf("store: take undo: expired: %w", store.ErrNotFound)
	}
	if err := json.Unmarshal([]byte(items), &u.Items); err != nil {
		return nil, fmt.Errorf("store: take undo: items: %w", err)
	}
	return &u, nil
}

// AddHistory implements store.Store.
func (s *Store) AddHistory(ctx context.Context, e *store.HistoryEntry) error {
	ids, err := json.Marshal(nonNilIDs(e.ContactIDs))
	if err != nil {
		return fmt.Errorf("store: add history: %w", err)
	}
	names, err := json.Marshal(nonNilStrings(e.ContactNames))
	if err != nil {
		return fmt.Errorf("store: add history: %w", err)
	}
	at := s.storedOrNow(e.At)
	err = s.q(ctx).QueryRowContext(ctx, `
		INSERT INTO history (member_id, lead_id, user_id, action, contact_ids, outcome, error_code, created_at,
			user_name, lead_title, contact_names, via, run_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		e.MemberID, e.LeadID, e.UserID, e.Action, string(ids), e.Outcome, e.ErrorCode, s.t(at),
		e.UserName, e.LeadTitle, string(names), cmp.Or(e.Via, store.ViaTab), e.RunID,
	).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("store: add history for portal %q: %w", e.MemberID, err)
	}
	e.At = at
	e.Via = cmp.Or(e.Via, store.ViaTab)
	return nil
}

// History implements store.Store. id breaks ties between entries of the
// same millisecond, so "newest first" is also "last written first".
func (s *Store) History(ctx context.Context, memberID string, limit int) ([]store.HistoryEntry, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `
		SELECT id, member_id, lead_id, user_id, action, contact_ids, outcome, error_code, created_at,
			user_name, lead_title, contact_names, via, run_id
		FROM history
		WHERE member_id = ?
		ORDER BY created_at DESC, id DESC
		LIMIT ?`, memberID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: history of portal %q: %w", memberID, err)
	}
	defer rows.Close()
	var out []store.HistoryEntry
	for rows.Next() {
		var e store.HistoryEntry
		var ids, names string
		if err := rows.Scan(&e.ID, &e.MemberID, &e.LeadID, &e.UserID, &e.Action, &ids, &e.Outcome, &e.ErrorCode, tm(&e.At),
			&e.UserName, &e.LeadTitle, &names, &e.Via, &e.RunID); err != nil {
			return nil, fmt.Errorf("store: history of portal %q: %w", memberID, err)
		}
		if err := json.Unmarshal([]byte(ids), &e.ContactIDs); err != nil {
			return nil, fmt.Errorf("store: history of portal %q: contact ids: %w", memberID, err)
		}
		if err := json.Unmarshal([]byte(names), &e.ContactNames); err != nil {
			return nil, fmt.Errorf("store: history of portal %q: contact names: %w", memberID, err)
		}
		if len(e.ContactNames) == 0 {
			e.ContactNames = nil // older rows: no names, as documented
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: history of portal %q: %w", memberID, err)
	}
	return out, nil
}

// DeleteHistory implements store.Store.
func (s *Store) DeleteHistory(ctx context.Context, memberID string) (int64, error) {
	return s.deleteRows(ctx, "store: delete history", `DELETE FROM history WHERE member_id = ?`, memberID)
}

// DeleteHistoryBefore implements store.Store.
func (s *Store) DeleteHistoryBefore(ctx context.Context, before time.Time) (int64, error) {
	return s.deleteRows(ctx, "store: delete old history", `DELETE FROM history WHERE created_at < ?`, s.t(before))
}

func (s *Store) deleteRows(ctx context.Context, what, query string, args ...any) (int64, error) {
	res, err := s.q(ctx).ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("%s: %w", what, err)
}

// nonNilLinks, nonNilIDs and nonNilStrings make an empty list a JSON []
// rather than null.
func nonNilLinks(l []store.LeadLink) []store.LeadLink {
	if l == nil {
		return []store.LeadLink{}
	}
	return l
}

func nonNilIDs(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// nonNilNames makes no contact names a JSON {} rather than null.
func nonNilNames(m map[int64]string) map[int64]string {
	if m == nil {
		return map[int64]string{}
	}
	return m
}
