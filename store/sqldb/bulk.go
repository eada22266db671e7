package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

var _ store.Bulk = (*Store)(nil)

// bulkAAD binds a run's sealed session reference to its portal, in the
// table|key|column shape the reseal pass opens it with (resealTables).
func bulkAAD(memberID string) string { return "bulk_runs|" + memberID + "|session_ref" }

// CreateBulkRun implements store.Bulk. The insert selects the installed
// portal; the partial unique index bulk_runs_active refuses a second
// active run of the same portal.
func (s *Store) CreateBulkRun(ctx context.Context, r *store.BulkRun) error {
	if r.SessionID == "" {
		return errors.New("store: create bulk run: no session")
	}
	if r.State == "" {
		r.State = store.RunQueued
	}
	filter, err := json.Marshal(r.Filter)
	if err != nil {
		return fmt.Errorf("store: create bulk run: %w", err)
	}
	now := s.storedOrNow(r.CreatedAt)
	err = s.q(ctx).QueryRowContext(ctx, `
		INSERT INTO bulk_runs (member_id, user_id, user_name, lang, session_ref, filter, state, matched, created_at, updated_at)
		SELECT member_id, ?, ?, ?, ?, ?, ?, ?, ?, ?
		FROM portals
		WHERE member_id = ? AND uninstalled_at IS NULL
		RETURNING id`,
		r.UserID, r.UserName, r.Lang, s.keys.Seal(secret.New(r.SessionID), bulkAAD(r.MemberID)), string(filter),
		r.State, r.Matched, s.t(now), s.t(now), r.MemberID).Scan(&r.ID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: create bulk run for portal %q: %w", r.MemberID, store.ErrNotFound)
	case err != nil && isUniqueViolation(err):
		return fmt.Errorf("store: create bulk run for portal %q: a run is in progress: %w", r.MemberID, store.ErrConflict)
	case err != nil:
		return fmt.Errorf("store: create bulk run for portal %q: %w", r.MemberID, err)
	}
	r.CreatedAt, r.UpdatedAt = now, now
	return nil
}

// isUniqueViolation recognises both drivers' unique-constraint errors
// by their text (SQLite: "UNIQUE constraint failed"; PostgreSQL: SQLSTATE
// 23505, "duplicate key value"), without importing either driver.
func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "23505") ||
		strings.Contains(msg, "duplicate key value")
}

// bulkColumns are the columns scanBulkRun reads, in its order.
const bulkColumns = `id, member_id, user_id, user_name, lang, session_ref, filter, state, error_code, last_lead,
	matched, leads, removed, refused, undo_state, restored, kept, lease_owner, lease_until,
	created_at, updated_at, finished_at, undo_until`

func (s *Store) scanBulkRun(row interface{ Scan(...any) error }) (*store.BulkRun, error) {
	var r store.BulkRun
	var ref, filter string
	err := row.Scan(&r.ID, &r.MemberID, &r.UserID, &r.UserName, &r.Lang, &ref, &filter, &r.State, &r.ErrorCode, &r.Cursor,
		&r.Matched, &r.Leads, &r.Removed, &r.Refused, &r.UndoState, &r.Restored, &r.Kept, &r.LeaseOwner, tm(&r.LeaseUntil),
		tm(&r.CreatedAt), tm(&r.UpdatedAt), tm(&r.FinishedAt), tm(&r.UndoUntil))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(filter), &r.Filter); err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	// A reference sealed under a retired key no longer opens: the run
	// then has no session, and an admin resumes it from a fresh page.
	if sid, err := s.keys.Open(ref, bulkAAD(r.MemberID)); err == nil {
		r.SessionID = sid.Reveal()
	}
	if r.LeaseUntil.Unix() <= 0 {
		r.LeaseUntil = time.Time{}
	}
	return &r, nil
}

// BulkRun implements store.Bulk.
func (s *Store) BulkRun(ctx context.Context, id int64) (*store.BulkRun, error) {
	r, err := s.scanBulkRun(s.q(ctx).QueryRowContext(ctx, `SELECT `+bulkColumns+` FROM bulk_runs WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: bulk run %d: %w", id, err)
	}
	return r, nil
}

// LatestBulkRun implements store.Bulk.
func (s *Store) LatestBulkRun(ctx context.Context, memberID string) (*store.BulkRun, error) {
	r, err := s.scanBulkRun(s.q(ctx).QueryRowContext(ctx, `
		SELECT `+bulkColumns+` FROM bulk_runs WHERE member_id = ? ORDER BY id DESC LIMIT 1`, memberID))
	if err != nil {
		return nil, fmt.Errorf("store: latest bulk run of portal %q: %w", memberID, err)
	}
	return r, nil
}

// StaleBulkRuns implements store.Bulk.
func (s *Store) StaleBulkRuns(ctx context.Context, now time.Time) ([]int64, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `
		SELECT id FROM bulk_runs
		WHERE (state IN ('queued', 'running') OR undo_state = 'running') AND lease_until <= ?
		ORDER BY id`, s.t(now))
	if err != nil {
		return nil, fmt.Errorf("store: stale bulk runs: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: stale bulk runs: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// LeaseBulkRun implements store.Bulk: one conditional UPDATE, so of two
// instances racing for a free lease exactly one wins.
func (s *Store) LeaseBulkRun(ctx context.Context, id int64, owner string, now, until time.Time) (*store.BulkRun, error) {
	res, err := s.q(ctx).ExecContext(ctx, `
		UPDATE bulk_runs SET lease_owner = ?, lease_until = ?
		WHERE id = ? AND (lease_owner = ? OR lease_until <= ?)`,
		owner, s.t(until), id, owner, s.t(now))
	if err := s.oneRow(ctx, fmt.Sprintf("store: lease bulk run %d", id), res, err,
		`SELECT 1 FROM bulk_runs WHERE id = ?`, id); err != nil {
		return nil, err
	}
	return s.BulkRun(ctx, id)
}

// ReleaseBulkRun implements store.Bulk.
func (s *Store) ReleaseBulkRun(ctx context.Context, id int64, owner string) error {
	_, err := s.q(ctx).ExecContext(ctx, `
		UPDATE bulk_runs SET lease_owner = '', lease_until = ? WHERE id = ? AND lease_owner = ?`,
		s.t(time.Unix(0, 0)), id, owner)
	if err != nil {
		return fmt.Errorf("store: release bulk run %d: %w", id, err)
	}
	return nil
}

// final reports whether a run state is final.
func final(state string) bool {
	return state == store.RunCancelled || state == store.RunDone || state == store.RunFailed
}

// SetBulkRunState implements store.Bulk.
func (s *Store) SetBulkRunState(ctx context.Context, id int64, from []string, to, errCode, sessionID string, now time.Time) error {
	return s.inTx(ctx, func(q querier) error {
		r, err := s.scanBulkRun(q.QueryRowContext(ctx, `SELECT `+bulkColumns+` FROM bulk_runs WHERE id = ?`+s.d.forUpdate, id))
		if err != nil {
			return fmt.Errorf("store: bulk run %d state: %w", id, err)
		}
		ok := false
		for _, f := range from {
			ok = ok || f == r.State
		}
		if !ok {
			return fmt.Errorf("store: bulk run %d is %s, not %v: %w", id, r.State, from, store.ErrConflict)
		}
		ref := ""
		if sessionID != "" {
			ref = s.keys.Seal(secret.New(sessionID), bulkAAD(r.MemberID))
		}
		var finished, undoUntil any
		if final(to) {
			finished, undoUntil = s.t(now), s.t(now.Add(store.BulkUndoTTL))
		}
		_, err = q.ExecContext(ctx, `
			UPDATE bulk_runs SET state = ?, error_code = ?, updated_at = ?,
				session_ref = CASE WHEN ? = '' THEN session_ref ELSE ? END,
				finished_at = COALESCE(?, finished_at), undo_until = COALESCE(?, undo_until)
			WHERE id = ?`, to, errCode, s.t(now), ref, ref, finished, undoUntil, id)
		if err != nil {
			return fmt.Errorf("store: bulk run %d state: %w", id, err)
		}
		return nil
	})
}

// SetBulkUndo implements store.Bulk.
func (s *Store) SetBulkUndo(ctx context.Context, id int64, from, to, sessionID string, now time.Time) error {
	return s.inTx(ctx, func(q querier) error {
		r, err := s.scanBulkRun(q.QueryRowContext(ctx, `SELECT `+bulkColumns+` FROM bulk_runs WHERE id = ?`+s.d.forUpdate, id))
		if err != nil {
			return fmt.Errorf("store: bulk run %d undo: %w", id, err)
		}
		if r.UndoState != from {
			return fmt.Errorf("store: bulk run %d undo is %q, not %q: %w", id, r.UndoState, from, store.ErrConflict)
		}
		if to == store.UndoRunning && (!final(r.State) || !now.Before(r.UndoUntil)) {
			return fmt.Errorf("store: bulk run %d cannot be undone now: %w", id, store.ErrConflict)
		}
		ref := ""
		if sessionID != "" {
			ref = s.keys.Seal(secret.New(sessionID), bulkAAD(r.MemberID))
		}
		_, err = q.ExecContext(ctx, `
			UPDATE bulk_runs SET undo_state = ?, updated_at = ?,
				session_ref = CASE WHEN ? = '' THEN session_ref ELSE ? END
			WHERE id = ?`, to, s.t(now), ref, ref, id)
		if err != nil {
			return fmt.Errorf("store: bulk run %d undo: %w", id, err)
		}
		return nil
	})
}

// endBulkRuns is the bulk runs' part of an uninstall, in its
// transaction. With clean every run of the portal goes, its leads first
// (not left to ON DELETE CASCADE, which SQLite applies only with foreign
// keys on). Otherwise a run still at work is cancelled (UNINSTALLED): its
// session is gone with the portal's, so it could only wait, and as an
// active run it would block a new one after a reinstall. An undo at work
// is stopped, as when its session dies, so an admin can start it again
// after a reinstall, within the run's window. A worker in the middle of a
// step finds the run cancelled, or gone, at its next lease.
func (s *Store) endBulkRuns(ctx context.Context, q querier, memberID string, clean bool, at time.Time) error {
	if clean {
		if _, err := q.ExecContext(ctx, `
			DELETE FROM bulk_leads WHERE run_id IN (SELECT id FROM bulk_runs WHERE member_id = ?)`, memberID); err != nil {
			return fmt.Errorf("delete bulk leads: %w", err)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM bulk_runs WHERE member_id = ?`, memberID); err != nil {
			return fmt.Errorf("delete bulk runs: %w", err)
		}
		return nil
	}
	if _, err := q.ExecContext(ctx, `
		UPDATE bulk_runs SET state = ?, error_code = 'UNINSTALLED', updated_at = ?,
			finished_at = ?, undo_until = ?
		WHERE member_id = ? AND state IN ('queued', 'running', 'paused')`,
		store.RunCancelled, s.t(at), s.t(at), s.t(at.Add(store.BulkUndoTTL)), memberID); err != nil {
		return fmt.Errorf("cancel bulk runs: %w", err)
	}
	if _, err := q.ExecContext(ctx, `
		UPDATE bulk_runs SET undo_state = ?, updated_at = ? WHERE member_id = ? AND undo_state = ?`,
		store.UndoNone, s.t(at), memberID, store.UndoRunning); err != nil {
		return fmt.Errorf("stop bulk undo: %w", err)
	}
	return nil
}

// holdLease renews owner's lease inside a transaction, and fails with
// ErrConflict when owner does not hold it: on PostgreSQL the row lock it
// takes also orders concurrent writers of the run.
func (s *Store) holdLease(ctx context.Context, q querier, id int64, owner string) error {
	res, err := q.ExecContext(ctx, `UPDATE bulk_runs SET updated_at = ? WHERE id = ? AND lease_owner = ?`,
		s.t(time.Now()), id, owner)
	return s.oneRow(ctx, fmt.Sprintf("store: bulk run %d lease", id), res, err, `SELECT 1 FROM bulk_runs WHERE id = ?`, id)
}

// ClaimBulkLeads implements store.Bulk.
func (s *Store) ClaimBulkLeads(ctx context.Context, id int64, owner string, cursor int64, leads []store.BulkLead) error {
	return s.inTx(ctx, func(q querier) error {
		if err := s.holdLease(ctx, q, id, owner); err != nil {
			return err
		}
		var skipped int64
		for _, l := range leads {
			links, err := json.Marshal(nonNilLinks(l.Links))
			if err != nil {
				return fmt.Errorf("store: claim bulk leads: %w", err)
			}
			res, err := q.ExecContext(ctx, `
				INSERT INTO bulk_leads (run_id, lead_id, title, state, links) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (run_id, lead_id) DO NOTHING`, id, l.LeadID, l.Title, l.State, string(links))
			if err != nil {
				return fmt.Errorf("store: claim bulk leads of run %d: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 1 && l.State == store.LeadSkipped {
				skipped++
			}
		}
		_, err := q.ExecContext(ctx, `UPDATE bulk_runs SET last_lead = ?, leads = leads + ? WHERE id = ? AND last_lead < ?`,
			cursor, skipped, id, cursor)
		if err != nil {
			return fmt.Errorf("store: claim bulk leads of run %d: %w", id, err)
		}
		return nil
	})
}

// BulkLeads implements store.Bulk.
func (s *Store) BulkLeads(ctx context.Context, id int64, state string, limit int) ([]store.BulkLead, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `
		SELECT lead_id, title, state, links, error_code FROM bulk_leads
		WHERE run_id = ? AND state = ? ORDER BY lead_id LIMIT ?`, id, state, limit)
	if err != nil {
		return nil, fmt.Errorf("store: leads of bulk run %d: %w", id, err)
	}
	defer rows.Close()
	var out []store.BulkLead
	for rows.Next() {
		var l store.BulkLead
		var links string
		if err := rows.Scan(&l.LeadID, &l.Title, &l.State, &links, &l.ErrorCode); err != nil {
			return nil, fmt.Errorf("store: leads of bulk run %d: %w", id, err)
		}
		if err := json.Unmarshal([]byte(links), &l.Links); err != nil {
			return nil, fmt.Errorf("store: leads of bulk run %d: links: %w", id, err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// SettleBulkLeads implements store.Bulk.
func (s *Store) SettleBulkLeads(ctx context.Context, id int64, owner, from string, leads []store.BulkLead) error {
	return s.inTx(ctx, func(q querier) error {
		if err := s.holdLease(ctx, q, id, owner); err != nil {
			return err
		}
		var c struct{ leads, removed, refused, restored, kept int64 }
		for _, l := range leads {
			links := ""
			if l.Links != nil {
				b, err := json.Marshal(l.Links)
				if err != nil {
					return fmt.Errorf("store: settle bulk leads: %w", err)
				}
				links = string(b)
			}
			res, err := q.ExecContext(ctx, `
				UPDATE bulk_leads SET state = ?, error_code = ?, links = CASE WHEN ? = '' THEN links ELSE ? END
				WHERE run_id = ? AND lead_id = ? AND state = ?`, l.State, l.ErrorCode, links, links, id, l.LeadID, from)
			if err != nil {
				return fmt.Errorf("store: settle bulk leads of run %d: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				continue // settled already: counted and recorded then
			}
			switch l.State {
			case store.LeadDone:
				c.leads++
				c.removed += int64(len(l.Links))
			case store.LeadRefused:
				c.leads++
				c.refused++
			case store.LeadRestored:
				c.restored++
			case store.LeadKept:
				c.kept++
			}
			if l.History != nil {
				if err := s.AddHistory(context.WithValue(ctx, txKey{s}, txOf(q)), l.History); err != nil {
					return err
				}
			}
		}
		_, err := q.ExecContext(ctx, `
			UPDATE bulk_runs SET leads = leads + ?, removed = removed + ?, refused = refused + ?,
				restored = restored + ?, kept = kept + ?
			WHERE id = ?`, c.leads, c.removed, c.refused, c.restored, c.kept, id)
		if err != nil {
			return fmt.Errorf("store: settle bulk leads of run %d: %w", id, err)
		}
		return nil
	})
}

// txOf is the transaction behind a querier handed to an inTx callback.
func txOf(q querier) *sql.Tx {
	if d, ok := q.(dialected); ok {
		if tx, ok := d.q.(*sql.Tx); ok {
			return tx
		}
	}
	return nil
}
