package store

import (
	"context"
	"time"
)

// States of a bulk run. Queued, running and paused are "active": a portal
// has at most one active run. Cancelled, done and failed are final.
const (
	RunQueued    = "queued"
	RunRunning   = "running"
	RunPaused    = "paused"
	RunCancelled = "cancelled"
	RunDone      = "done"
	RunFailed    = "failed"
)

// States of a bulk run's undo (BulkRun.UndoState): none yet, being
// worked, finished.
const (
	UndoNone    = ""
	UndoRunning = "running"
	UndoDone    = "done"
)

// States of one lead of a bulk run. Claimed is written before the lead's
// delete is sent and settled (done, refused) after its answer; a lead
// without contacts is skipped at once. The undo claims a done lead
// (restoring) and settles it restored, or kept when it has contacts again
// or Bitrix24 refused.
const (
	LeadClaimed   = "claimed"
	LeadDone      = "done"
	LeadRefused   = "refused"
	LeadSkipped   = "skipped"
	LeadRestoring = "restoring"
	LeadRestored  = "restored"
	LeadKept      = "kept"
)

// BulkFilter is what a bulk run's leads match, as the admin chose it:
// any of the stages, any of the sources, one responsible user, created
// on or after CreatedFrom and on or before CreatedTo (dates, YYYY-MM-DD,
// in the portal's zone). Empty parts match everything.
type BulkFilter struct {
	Stages        []string `json:"stages,omitempty"`
	Sources       []string `json:"sources,omitempty"`
	ResponsibleID int64    `json:"responsible,omitempty"`
	CreatedFrom   string   `json:"from,omitempty"`
	CreatedTo     string   `json:"to,omitempty"`
}

// BulkRun is one admin's bulk removal on one portal: its filter, its
// state and its counters. It holds no token: SessionID refers to the
// admin's session (sealed in its row), whose tokens the run acts with.
type BulkRun struct {
	ID        int64
	MemberID  string
	UserID    int64
	UserName  string
	Lang      string
	SessionID string // raw session id; stored sealed
	Filter    BulkFilter
	State     string
	// ErrorCode says why the run failed or was paused by the app
	// (SESSION_EXPIRED, ACCESS_DENIED...); "" otherwise.
	ErrorCode string
	// Cursor is the highest lead id claimed: the next page starts after it.
	Cursor int64
	// Matched is how many leads the filter matched when the run started.
	Matched int64
	// Leads counts the leads settled (done, refused or skipped), Removed
	// the links removed, Refused the leads Bitrix24 refused.
	Leads, Removed, Refused int64
	UndoState               string
	Restored, Kept          int64 // leads the undo restored, and left alone
	CreatedAt               time.Time
	UpdatedAt               time.Time
	FinishedAt              time.Time // zero until the run is final
	UndoUntil               time.Time // zero until the run is final
	LeaseOwner              string
	LeaseUntil              time.Time
}

// Active reports whether the run may still do work (an undo included).
func (r *BulkRun) Active() bool {
	switch r.State {
	case RunQueued, RunRunning, RunPaused:
		return true
	}
	return r.UndoState == UndoRunning
}

// BulkLead is one lead of a bulk run: its title as listed, the links the
// run removed (the undo's snapshot), its state and, for a refusal, the
// Bitrix24 error code. History, when set on a lead handed to
// SettleBulkLeads, is written in the same transaction, only if the lead
// moved (so a lead is never recorded twice).
type BulkLead struct {
	LeadID    int64
	Title     string
	Links     []LeadLink
	State     string
	ErrorCode string
	History   *HistoryEntry
}

// BulkUndoTTL is how long after its end a bulk run can be undone: a day,
// long enough to notice a wrong filter, short enough that most leads are
// still as the run left them (the undo skips those that are not).
const BulkUndoTTL = 24 * time.Hour

// Bulk is what bulk runs need from persistence. Every write that moves
// a run's work forward takes the run's lease owner and fails with
// ErrConflict when another owner holds the lease: only one instance works
// a run at a time, and a stale one cannot record anything.
type Bulk interface {
	// CreateBulkRun stores a new run (State queued when empty) and sets
	// its ID; ErrConflict when the portal has an active run, ErrNotFound
	// when the portal is not installed.
	CreateBulkRun(ctx context.Context, r *BulkRun) error
	// BulkRun returns a run; ErrNotFound when there is none.
	BulkRun(ctx context.Context, id int64) (*BulkRun, error)
	// LatestBulkRun returns the portal's newest run; ErrNotFound when none.
	LatestBulkRun(ctx context.Context, memberID string) (*BulkRun, error)
	// StaleBulkRuns lists the runs with work to do (queued, running, or
	// undoing) whose lease is free at now: the ones a crash left behind.
	StaleBulkRuns(ctx context.Context, now time.Time) ([]int64, error)
	// LeaseBulkRun takes or renews the run's lease for owner until until,
	// if it is free at now or already owner's, and returns the run;
	// ErrConflict when another owner holds it.
	LeaseBulkRun(ctx context.Context, id int64, owner string, now, until time.Time) (*BulkRun, error)
	// ReleaseBulkRun frees owner's lease (no error when not owner's).
	ReleaseBulkRun(ctx context.Context, id int64, owner string) error
	// SetBulkRunState moves a run from one of the states from to to, with
	// errCode; a non-empty sessionID rebinds the run to that session (a
	// resume by an admin on a fresh page). A final state sets FinishedAt
	// and UndoUntil (now + BulkUndoTTL). ErrConflict when the run is in
	// none of from.
	SetBulkRunState(ctx context.Context, id int64, from []string, to, errCode, sessionID string, now time.Time) error
	// SetBulkUndo moves the run's undo from one state to another
	// (ErrConflict otherwise); starting one needs a final run within its
	// undo window at now, and may rebind the session like SetBulkRunState.
	SetBulkUndo(ctx context.Context, id int64, from, to, sessionID string, now time.Time) error
	// ClaimBulkLeads records a page of the run's leads (claimed, or
	// skipped with no links) and moves the cursor to cursor, under
	// owner's lease. A lead already recorded is left as it is.
	ClaimBulkLeads(ctx context.Context, id int64, owner string, cursor int64, leads []BulkLead) error
	// BulkLeads returns up to limit of the run's leads in state, by id.
	BulkLeads(ctx context.Context, id int64, state string, limit int) ([]BulkLead, error)
	// SettleBulkLeads moves each lead from state from to its State (with
	// its ErrorCode and, when not nil, Links), counts it on the run and
	// writes its History, all in one transaction under owner's lease; a
	// lead no longer in from is skipped, so nothing is counted twice.
	SettleBulkLeads(ctx context.Context, id int64, owner, from string, leads []BulkLead) error
}
