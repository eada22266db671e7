// Package store defines what the app persists — installed portals and the
// lead tab's frame sessions — and the errors every backend returns. The
// backends live in store/sqlite and store/postgres and pass one shared
// suite (store/storetest), so handlers never see SQL or a dialect.
//
// Every token is encrypted by the backend before it is written (AES-GCM
// through secret.Keyring, with the row and column as associated data), so
// callers hand over secret.String values and never think about it.
//
// Times come back in UTC at the backend's precision (milliseconds in
// SQLite, microseconds in PostgreSQL). Sessions are keyed by an unkeyed
// digest of their 256-bit random id (secret.Keyring.Lookup), so a rotation
// of the master secret does not orphan them; their tokens, like portal
// tokens, stay readable while the previous secret is configured.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/b24apps/leadcontacts/secret"
)

// Errors returned by every backend.
var (
	// ErrNotFound means no row has that key.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a compare-and-swap lost: someone else wrote the row
	// since the caller read it (for tokens: someone else refreshed first).
	ErrConflict = errors.New("store: conflicting concurrent update")
)

// Portal is one Bitrix24 account the app is (or was) installed on, keyed by
// the stable member_id (it survives domain renames).
type Portal struct {
	MemberID     string
	Domain       string // host[:port], taken from the verified client_endpoint
	RESTEndpoint string // verified client_endpoint, e.g. https://x.bitrix24.com/rest/
	OAuthServer  string // trusted OAuth server base URL that confirmed the install
	Scope        string // comma list granted to the app
	Status       string // app status letter reported by the OAuth server (F, D, T, P, L, S)
	AppTokenHash string // secret.Keyring.Hash of the application_token
	InstalledBy  int64  // Bitrix24 user id of the admin who installed
	Lang         string // portal language at install time
	// AppID and AppCode are the app as this portal knows it (app.info ID
	// and CODE at install): a user token whose app.info differs was not
	// issued to this app here. 0 and "" when not recorded.
	AppID   int64
	AppCode string

	// The installing admin's tokens: used only for install-time work
	// (binding placements and events), never for a user's action.
	AccessToken  secret.String
	RefreshToken secret.String
	TokenExpiry  time.Time

	InstalledAt   time.Time
	UpdatedAt     time.Time
	UninstalledAt time.Time // zero while installed
	Version       int64     // incremented by every write; the compare-and-swap token

	// Problem is the Bitrix24 error code of a lasting failure the portal
	// reported (PORTAL_DELETED, OVERLOAD_LIMIT), for operators and alerts;
	// "" when none. A reinstall or a later successful call clears it.
	Problem   string
	ProblemAt time.Time

	// UninstallReportedAt is when an ONAPPUNINSTALL came that Bitrix24
	// could not confirm (zero when none), and UninstallClean whether it
	// asked to delete the app's data. A verified frame clears the report;
	// after the grace period the portal is uninstalled as reported.
	UninstallReportedAt time.Time
	UninstallClean      bool
}

// Active reports whether the app is currently installed on the portal.
func (p *Portal) Active() bool { return p.UninstalledAt.IsZero() }

// Session is the server side of one opened lead tab: who opened it, for
// which lead, with that user's own tokens. The page carries only a signed
// reference to it, so the action never trusts a form field for the lead or
// the user.
type Session struct {
	ID        string // raw random id; backends key rows by secret.Keyring.Lookup(ID), never the raw id
	MemberID  string
	UserID    int64
	LeadID    int64
	LeadTitle string
	Lang      string
	// UserName and ContactNames are what the tab's batch read when it
	// opened (profile NAME and LAST_NAME; contact id to full name, only
	// the contacts whose names were read): the history records them with
	// the user's actions. Empty when unknown.
	UserName     string
	ContactNames map[int64]string

	AccessToken  secret.String
	RefreshToken secret.String
	TokenVersion int64 // incremented by every token update; the compare-and-swap token

	CreatedAt time.Time
	ExpiresAt time.Time
}

// UninstallReport is a portal reported uninstalled, see ReportUninstall.
type UninstallReport struct {
	MemberID string
	Clean    bool
}

// TokenPair is a user's stored access and refresh token.
type TokenPair struct {
	Access, Refresh secret.String
}

// Store is what the app needs from a backend. Implementations are safe for
// concurrent use by many goroutines (and, for PostgreSQL, many processes).
type Store interface {
	// SavePortal inserts or replaces the portal row for p.MemberID (install
	// and reinstall). It clears UninstalledAt, sets InstalledAt when the row
	// is new or was uninstalled, sets UpdatedAt, and bumps Version; p is
	// updated with the stored values.
	SavePortal(ctx context.Context, p *Portal) error
	// Portal returns the row for memberID, installed or not; ErrNotFound
	// when there is none.
	Portal(ctx context.Context, memberID string) (*Portal, error)
	// UpdatePortalTokens replaces the installer's token pair if the row's
	// Version still equals version; ErrConflict otherwise, and also when the
	// portal is uninstalled (a late refresh must not bring wiped tokens
	// back); ErrNotFound when there is no row.
	UpdatePortalTokens(ctx context.Context, memberID string, version int64, access, refresh secret.String, expiry time.Time) error
	// UninstallPortal marks the portal uninstalled at the given time, wipes
	// its tokens and deletes its sessions. With clean (the admin chose to
	// delete the app's data) it also blanks domain, endpoints and scope,
	// keeping only member_id, the application-token hash and the time, so a
	// repeated uninstall event can still be verified, and deletes the
	// portal's bulk runs with their leads; without clean, its runs still
	// at work are cancelled (ErrorCode UNINSTALLED) and an undo at work is
	// stopped, since they cannot go on without a session. Idempotent: a repeat
	// keeps the first uninstall time and changes nothing unless clean asks
	// for more. ErrNotFound for an unknown portal.
	UninstallPortal(ctx context.Context, memberID string, clean bool, at time.Time) error

	// CreateSession stores a new frame session (s.ID must be set). It sets
	// TokenVersion to 1 and CreatedAt when zero, and updates s with the
	// stored values; ErrNotFound when the portal is unknown or uninstalled.
	CreateSession(ctx context.Context, s *Session) error
	// Session returns the session with that raw id; ErrNotFound when it
	// does not exist, has expired (ExpiresAt <= now), or its portal is
	// uninstalled.
	Session(ctx context.Context, id string, now time.Time) (*Session, error)
	// UpdateSessionTokens replaces the session's token pair if its
	// TokenVersion still equals version; ErrConflict otherwise (another
	// request refreshed first: re-read and use its tokens); ErrNotFound when
	// the session is gone.
	UpdateSessionTokens(ctx context.Context, id string, version int64, access, refresh secret.String) error
	// DeleteExpiredSessions removes sessions with ExpiresAt <= now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)

	// SaveUndo stores u as the undo snapshot of session u.SessionID,
	// replacing an earlier one; CreatedAt defaults to now and u is updated
	// with the stored values. ErrNotFound when the session does not exist.
	// Deleting the session (expiry, uninstall) deletes its snapshot.
	SaveUndo(ctx context.Context, u *UndoSnapshot) error
	// TakeUndo returns the session's snapshot and deletes it, so one
	// removal is undone at most once however many clicks race; ErrNotFound
	// when there is none or it has expired (ExpiresAt <= now).
	TakeUndo(ctx context.Context, sessionID string, now time.Time) (*UndoSnapshot, error)
	// AddHistory appends e (At defaults to now; ID and At are set from the
	// stored row).
	AddHistory(ctx context.Context, e *HistoryEntry) error
	// History returns the portal's newest entries first, at most limit.
	History(ctx context.Context, memberID string, limit int) ([]HistoryEntry, error)
	// DeleteHistory removes all of a portal's history (uninstall with
	// CLEAN) and returns how many entries went.
	DeleteHistory(ctx context.Context, memberID string) (int64, error)
	// DeleteHistoryBefore removes entries older than before (retention).
	DeleteHistoryBefore(ctx context.Context, before time.Time) (int64, error)

	// DeleteSession removes a frame session (and what hangs off it), e.g.
	// when its refresh token is dead: the tab then asks the user to reopen
	// it at once instead of trying the dead grant again. Deleting a missing
	// session is not an error.
	DeleteSession(ctx context.Context, id string) error
	// UpdatePortalEndpoint moves an installed portal to a new REST endpoint
	// and domain (a renamed Bitrix24 account) if its endpoint still equals
	// from, bumping Version; ErrConflict otherwise or when uninstalled,
	// ErrNotFound when there is no row. Callers move a portal only after a
	// call to the new endpoint succeeded with the portal's token.
	UpdatePortalEndpoint(ctx context.Context, memberID, from, endpoint, domain string) error
	// FlagPortal records (problem != "") or clears (problem == "") the
	// portal's lasting problem, without touching Version: it is a note for
	// operators, not state a compare-and-swap depends on. ErrNotFound when
	// there is no row.
	FlagPortal(ctx context.Context, memberID, problem string, at time.Time) error
	// ReportUninstall records an ONAPPUNINSTALL that Bitrix24 could not
	// confirm: the first report's time is kept, and clean only ever turns
	// on. ErrNotFound for an unknown or uninstalled portal.
	ReportUninstall(ctx context.Context, memberID string, clean bool, at time.Time) error
	// ClearUninstallReport drops a report (a verified frame proved the app
	// installed); a portal without one is left alone.
	ClearUninstallReport(ctx context.Context, memberID string) error
	// ReportedUninstalls lists installed portals reported uninstalled at
	// or before before, oldest report first.
	ReportedUninstalls(ctx context.Context, before time.Time) ([]UninstallReport, error)
	// RecentTokens returns the token pairs of a portal's newest live
	// sessions (at most limit), to ask Bitrix24 whether the app is still
	// installed.
	RecentTokens(ctx context.Context, memberID string, limit int, now time.Time) ([]TokenPair, error)

	// Bulk: the admins' bulk runs (bulk.go).
	Bulk
	// Locker: token refreshes rely on it in every backend.
	Locker
	// Resealer lets a key rotation finish.
	Resealer

	// Ping reports whether the database answers a query now; the
	// readiness probe calls it with a short deadline.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}

// Locker serialises work on one portal or one session across goroutines
// and, for PostgreSQL, across processes (a row lock held for the duration
// of fn). Store calls made inside fn must use the ctx passed to fn: on
// PostgreSQL they then run inside the locking transaction instead of
// waiting for the lock they are inside of. Both return ErrNotFound when
// the row does not exist.
type Locker interface {
	WithPortalLock(ctx context.Context, memberID string, fn func(ctx context.Context) error) error
	WithSessionLock(ctx context.Context, id string, fn func(ctx context.Context) error) error
}

// Resealer lets a key rotation finish: after APP_SECRET changes, stored
// values still sealed or hashed under the previous secret are moved to the
// current one, so APP_SECRET_PREVIOUS can then be dropped.
type Resealer interface {
	// ResealTokens re-encrypts every token sealed under an older key with
	// the current key and returns how many values it rewrote. A value that
	// changed meanwhile (a concurrent refresh) is left alone.
	ResealTokens(ctx context.Context) (int, error)
	// UpdateAppTokenHash replaces a portal's application-token hash if it
	// still equals old (the raw token is never stored, so a hash can only
	// be renewed when the portal presents the token again); ErrConflict
	// otherwise.
	UpdateAppTokenHash(ctx context.Context, memberID, old, fresh string) error
}

// ResealTable is one table holding sealed values, with a backend's own
// queries: Select returns, per row, its key, the key its values are bound
// to (the middle part of their associated data, table|key|column: the
// row key itself, or for a bulk run its portal), and one value per
// Columns; Update[column] is a compare-and-swap taking (new ciphertext,
// row key, old ciphertext).
type ResealTable struct {
	Table   string
	Columns []string
	Select  string
	Update  map[string]string
}

// Querier is what ResealTokens needs from a *sql.DB or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ResealTokens is the reseal pass both backends run with their own SQL:
// rows are read first and written after, one small statement per value,
// so no write lock is held for the whole pass, and each value is a
// compare-and-swap on its old ciphertext, so a concurrent refresh wins.
func ResealTokens(ctx context.Context, q Querier, keys *secret.Keyring, tables []ResealTable) (int, error) {
	n := 0
	for _, t := range tables {
		todo, err := staleValues(ctx, q, keys, t)
		if err != nil {
			return n, err
		}
		for _, v := range todo {
			fresh, err := v.reseal(keys)
			if err != nil {
				return n, err
			}
			res, err := q.ExecContext(ctx, t.Update[v.Column], fresh, v.Key, v.Sealed)
			if err != nil {
				return n, fmt.Errorf("store: reseal %s: %w", t.Table, err)
			}
			if k, _ := res.RowsAffected(); k == 1 {
				n++
			}
		}
	}
	return n, nil
}

// sealedValue is one stored ciphertext found under an older key. Key is
// the row's key as the driver returned it (so it goes back in the same
// type); Bound is what the ciphertext's associated data names.
type sealedValue struct {
	Table, Bound, Column, Sealed string
	Key                          any
}

// staleValues lists the values of t that an older key sealed.
func staleValues(ctx context.Context, q Querier, keys *secret.Keyring, t ResealTable) ([]sealedValue, error) {
	rows, err := q.QueryContext(ctx, t.Select)
	if err != nil {
		return nil, fmt.Errorf("store: reseal %s: %w", t.Table, err)
	}
	defer rows.Close()
	var out []sealedValue
	for rows.Next() {
		var key any
		var bound string
		vals := make([]string, len(t.Columns))
		dest := []any{&key, &bound}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("store: reseal %s: %w", t.Table, err)
		}
		for i, col := range t.Columns {
			if vals[i] != "" && keys.NeedsReseal(vals[i]) {
				out = append(out, sealedValue{Table: t.Table, Key: key, Bound: bound, Column: col, Sealed: vals[i]})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reseal %s: %w", t.Table, err)
	}
	return out, nil
}

// reseal opens the value under its old key and seals it under the current
// one, with the same associated data (table, row key, column).
func (v sealedValue) reseal(keys *secret.Keyring) (string, error) {
	aad := v.Table + "|" + v.Bound + "|" + v.Column
	plain, err := keys.Open(v.Sealed, aad)
	if err != nil {
		return "", fmt.Errorf("store: reseal %s %v %s: %w", v.Table, v.Key, v.Column, err)
	}
	return keys.Seal(plain, aad), nil
}
