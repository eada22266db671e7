package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/store"
)

// A bulk run removes the contact links of every lead an admin's filter
// matches, as that admin (their own token, so Bitrix24 applies their
// rights), in the background: the job engine calls WorkBulkRun, which
// works the run step by step until it is done, paused or cancelled. A
// step is one read and one batch of deletes (bulkremove.go), or one step
// of the run's undo (bulkundo.go). Every step's outcome is committed
// before the next starts, so a crash or a deploy loses at most the batch
// in flight, whose leads are read back before anything is sent again.

// bulkLease is how long an instance holds a run between two steps; a
// crashed instance's runs are picked up once it lapses (the resume pass
// runs as often, jobs.BulkResumeEvery).
const bulkLease = 15 * time.Second

// bulkRetries is how many transient failures in a row (rate limit, 5xx,
// network) a run sits out with a growing pause before its job gives up
// and leaves it to River's retry; progress is kept either way.
const bulkRetries = 6

// errBulkSession means the run's admin session is gone or its tokens are
// dead: the run is paused until an admin resumes it from a fresh page.
var errBulkSession = errors.New("the run's admin session has ended")

// bulkWork is one job's work on one run: its lease owner, and the leads
// listed ahead of the cursor (the next listing starts after the last
// lead claimed, so the buffer is only a saving, never state).
type bulkWork struct {
	h      *Handlers
	owner  string
	buffer []listedLead
	// exhausted: the last listing reached the end of the filter's leads.
	exhausted bool
	// userID and userName are the acting admin's (see actor).
	userID   int64
	userName string
	// sleep waits between retries.
	sleep func(ctx context.Context, d time.Duration) error
}

// WorkBulkRun implements jobs.Bulk: it works run id until it is finished,
// paused or cancelled. Another instance holding the run's lease makes it
// return nil at once; a run a crash left behind is taken over once its
// lease lapses.
func (h *Handlers) WorkBulkRun(ctx context.Context, id int64) error {
	ctx = bitrix24.Background(ctx)
	w := &bulkWork{h: h, owner: randomID()[:16], sleep: bitrix24.Sleep}
	run, err := h.d.Store.LeaseBulkRun(ctx, id, w.owner, time.Now(), time.Now().Add(bulkLease))
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := h.d.Store.ReleaseBulkRun(rctx, id, w.owner); err != nil {
			h.d.Logger.WarnContext(rctx, "bulk run lease not released", "run", id, "err", err)
		}
	}()
	failures := 0
	for {
		more, err := w.step(ctx, run)
		switch {
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, store.ErrConflict):
			return nil // the lease went to another instance
		case transient(err):
			failures++
			h.d.Logger.InfoContext(ctx, "bulk run step failed; retrying", "run", id, "member", run.MemberID,
				"failures", failures, "err", err)
			if failures > bulkRetries {
				return err
			}
			if err := w.sleep(ctx, time.Second<<min(failures-1, 5)); err != nil {
				return err
			}
		case permanent(err):
			h.stopRun(ctx, run, err)
			return nil
		default:
			return err // the store, say: River retries, the run as it was
		}
		if !more {
			return nil
		}
		if run, err = h.d.Store.LeaseBulkRun(ctx, id, w.owner, time.Now(), time.Now().Add(bulkLease)); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil
			}
			return err
		}
	}
}

// StaleBulkRuns implements jobs.Bulk.
func (h *Handlers) StaleBulkRuns(ctx context.Context) ([]int64, error) {
	return h.d.Store.StaleBulkRuns(ctx, time.Now())
}

// step does one step of the run as it is now (re-read with the lease, so
// a pause or a cancel takes effect here) and reports whether there is
// more to do.
func (w *bulkWork) step(ctx context.Context, run *store.BulkRun) (bool, error) {
	switch {
	case run.UndoState == store.UndoRunning:
		return w.undoStep(ctx, run)
	case run.State == store.RunQueued:
		err := w.h.d.Store.SetBulkRunState(ctx, run.ID, []string{store.RunQueued}, store.RunRunning, "", "", time.Now())
		return err == nil, err
	case run.State == store.RunRunning:
		return w.removeStep(ctx, run)
	}
	return false, nil
}

// actor is the admin session and portal a run acts with, read afresh for
// every step (a refresh in between stored a new token pair).
func (w *bulkWork) actor(ctx context.Context, run *store.BulkRun) (*store.Session, *store.Portal, error) {
	p, err := w.h.d.Store.Portal(ctx, run.MemberID)
	if err != nil {
		return nil, nil, err
	}
	if !p.Active() {
		return nil, nil, fmt.Errorf("portal %q uninstalled: %w", run.MemberID, errBulkSession)
	}
	if run.SessionID == "" {
		return nil, nil, errBulkSession
	}
	sess, err := w.h.d.Store.Session(ctx, run.SessionID, w.h.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errBulkSession
	}
	if err != nil {
		return nil, nil, err
	}
	if sess.MemberID != run.MemberID || sess.LeadID != 0 {
		return nil, nil, fmt.Errorf("not an admin page's session: %w", errBulkSession)
	}
	// The history names the admin whose token acts: the one who started
	// the run, or who resumed or undid it from their own page.
	w.userID, w.userName = sess.UserID, sess.UserName
	return sess, p, nil
}

// begin is the prologue of every step, a removal's or an undo's: the
// admin session and portal the run acts with (actor), and up to a batch
// of the run's leads still in state (claimed, restoring) from a batch
// whose answer was lost, to be read back before anything is sent.
func (w *bulkWork) begin(ctx context.Context, run *store.BulkRun, state string) (*store.Session, *store.Portal, []store.BulkLead, error) {
	sess, p, err := w.actor(ctx, run)
	if err != nil {
		return nil, nil, nil, err
	}
	leads, err := w.h.d.Store.BulkLeads(ctx, run.ID, state, bitrix24.MaxBatch)
	if err != nil {
		return nil, nil, nil, err
	}
	return sess, p, leads, nil
}

// stopRun ends a run's work on a failure that waiting does not cure: a
// dead session pauses the run (an admin resumes it from a fresh page, with
// fresh tokens); anything else (the admin lost the right to list leads,
// the portal is gone) fails it, with the code. An undo is stopped, so an
// admin can start it again.
func (h *Handlers) stopRun(ctx context.Context, run *store.BulkRun, cause error) {
	code := upstreamCode(cause)
	dead := errors.Is(cause, errBulkSession) || errors.Is(cause, errSessionDead) || bitrix24.IsAuthFailure(cause)
	if dead {
		code = "SESSION_EXPIRED"
	}
	h.d.Logger.WarnContext(ctx, "bulk run stopped", "run", run.ID, "member", run.MemberID, "code", code, "err", cause)
	var err error
	switch {
	case run.UndoState == store.UndoRunning:
		err = h.d.Store.SetBulkUndo(ctx, run.ID, store.UndoRunning, store.UndoNone, "", time.Now())
	case dead:
		err = h.d.Store.SetBulkRunState(ctx, run.ID, []string{store.RunQueued, store.RunRunning}, store.RunPaused, code, "", time.Now())
	default:
		err = h.d.Store.SetBulkRunState(ctx, run.ID, []string{store.RunQueued, store.RunRunning}, store.RunFailed, code, "", time.Now())
	}
	if err != nil {
		h.d.Logger.WarnContext(ctx, "bulk run state not recorded", "run", run.ID, "err", err)
	}
}

// transient reports whether a failure is one that waiting cures: the
// portal's rate limit or operating limit, its 5xx, the network, or an
// answer that leaves open what ran.
func transient(err error) bool {
	return errors.Is(err, bitrix24.ErrQueryLimitExceeded) || errors.Is(err, bitrix24.ErrRateLimited) ||
		errors.Is(err, bitrix24.ErrOperationTimeLimit) || bitrix24.Ambiguous(err) ||
		errors.Is(err, bitrix24.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded)
}

// permanent reports whether a failure is one that retrying does not cure:
// the session is dead, or Bitrix24 refused for good.
func permanent(err error) bool {
	var be *bitrix24.Error
	return errors.Is(err, errBulkSession) || errors.Is(err, errSessionDead) || errors.Is(err, errRefreshFailed) ||
		errors.As(err, &be) || errors.Is(err, bitrix24.ErrMoved)
}
