package postgres

import (
	"context"
	"fmt"

	"github.com/b24apps/leadcontacts/store"
)

// ResealTokens implements store.Resealer: every token sealed under an
// older key is opened and sealed again under the current one. Each value
// is rewritten with a compare-and-swap on its old ciphertext, so a
// concurrent refresh always wins and nothing it wrote is overwritten.
// The rows are read first and written after, one small transaction each,
// so no write lock is held for the whole pass.
func (s *Store) ResealTokens(ctx context.Context) (int, error) {
	n := 0
	for _, t := range resealTables {
		rows, err := s.q(ctx).QueryContext(ctx, t.sel)
		if err != nil {
			return n, fmt.Errorf("store: reseal %s: %w", t.table, err)
		}
		var todo []store.SealedValue
		for rows.Next() {
			var key, access, refresh string
			if err := rows.Scan(&key, &access, &refresh); err != nil {
				_ = rows.Close()
				return n, fmt.Errorf("store: reseal %s: %w", t.table, err)
			}
			todo = append(todo, store.Stale(s.keys, t.table, key, access, refresh)...)
		}
		if err := rows.Close(); err != nil {
			return n, fmt.Errorf("store: reseal %s: %w", t.table, err)
		}
		for _, v := range todo {
			fresh, err := v.Reseal(s.keys)
			if err != nil {
				return n, err
			}
			res, err := s.q(ctx).ExecContext(ctx,
				t.upd[v.Column],
				fresh, v.Key, v.Sealed)
			if err != nil {
				return n, fmt.Errorf("store: reseal %s: %w", t.table, err)
			}
			if k, _ := res.RowsAffected(); k == 1 {
				n++
			}
		}
	}
	return n, nil
}

// UpdateAppTokenHash implements store.Resealer.
func (s *Store) UpdateAppTokenHash(ctx context.Context, memberID, old, fresh string) error {
	res, err := s.q(ctx).ExecContext(ctx, `UPDATE portals SET app_token_hash = $1 WHERE member_id = $2 AND app_token_hash = $3`,
		fresh, memberID, old)
	if err != nil {
		return fmt.Errorf("store: rehash portal %q: %w", memberID, err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return fmt.Errorf("store: rehash portal %q: %w", memberID, store.ErrConflict)
	}
	return nil
}

// resealTables holds, per table with sealed tokens, the queries of the
// reseal pass, spelled out so no SQL is assembled at run time.
var resealTables = []struct {
	table string
	sel   string
	upd   map[string]string // by column
}{
	{"portals", `SELECT member_id, access_token, refresh_token FROM portals`, map[string]string{
		"access_token":  `UPDATE portals SET access_token = $1 WHERE member_id = $2 AND access_token = $3`,
		"refresh_token": `UPDATE portals SET refresh_token = $1 WHERE member_id = $2 AND refresh_token = $3`,
	}},
	{"sessions", `SELECT id_lookup, access_token, refresh_token FROM sessions`, map[string]string{
		"access_token":  `UPDATE sessions SET access_token = $1 WHERE id_lookup = $2 AND access_token = $3`,
		"refresh_token": `UPDATE sessions SET refresh_token = $1 WHERE id_lookup = $2 AND refresh_token = $3`,
	}},
}

var _ store.Resealer = (*Store)(nil)
