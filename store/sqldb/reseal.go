package sqldb

import (
	"context"
	"fmt"

	"github.com/b24apps/leadcontacts/store"
)

// ResealTokens implements store.Resealer with this backend's SQL; the
// pass itself is store.ResealTokens.
func (s *Store) ResealTokens(ctx context.Context) (int, error) {
	return store.ResealTokens(ctx, s.q(ctx), s.keys, resealTables)
}

// UpdateAppTokenHash implements store.Resealer.
func (s *Store) UpdateAppTokenHash(ctx context.Context, memberID, old, fresh string) error {
	res, err := s.q(ctx).ExecContext(ctx, `UPDATE portals SET app_token_hash = ? WHERE member_id = ? AND app_token_hash = ?`,
		fresh, memberID, old)
	if err != nil {
		return fmt.Errorf("store: rehash portal %q: %w", memberID, err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return fmt.Errorf("store: rehash portal %q: %w", memberID, store.ErrConflict)
	}
	return nil
}

// resealTables holds, per table with sealed values, the queries of the
// reseal pass, spelled out so no SQL is assembled at run time. A bulk
// run's session reference is bound to its portal (bulkAAD), not its row.
var resealTables = []store.ResealTable{
	{Table: "portals", Columns: []string{"access_token", "refresh_token"},
		Select: `SELECT member_id, member_id, access_token, refresh_token FROM portals`, Update: map[string]string{
			"access_token":  `UPDATE portals SET access_token = ? WHERE member_id = ? AND access_token = ?`,
			"refresh_token": `UPDATE portals SET refresh_token = ? WHERE member_id = ? AND refresh_token = ?`,
		}},
	{Table: "sessions", Columns: []string{"access_token", "refresh_token"},
		Select: `SELECT id_lookup, id_lookup, access_token, refresh_token FROM sessions`, Update: map[string]string{
			"access_token":  `UPDATE sessions SET access_token = ? WHERE id_lookup = ? AND access_token = ?`,
			"refresh_token": `UPDATE sessions SET refresh_token = ? WHERE id_lookup = ? AND refresh_token = ?`,
		}},
	{Table: "bulk_runs", Columns: []string{"session_ref"},
		Select: `SELECT id, member_id, session_ref FROM bulk_runs`, Update: map[string]string{
			"session_ref": `UPDATE bulk_runs SET session_ref = ? WHERE id = ? AND session_ref = ?`,
		}},
}
