package handlers

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/store"
)

// undoStep does one step of a run's undo: up to 50 of the leads the run
// cleared are claimed (restoring), read back in one batch, and those still
// without contacts get their links back in one batch of
// crm.lead.contact.items.set. A lead with contacts again is left alone
// and recorded so, as the tab's undo does (items.set replaces the whole
// list, which would unlink the new ones); see undo in remove.go for the
// one-round-trip window Bitrix24 leaves between the read and the write.
func (w *bulkWork) undoStep(ctx context.Context, run *store.BulkRun) (bool, error) {
	sess, p, leads, err := w.begin(ctx, run, store.LeadRestoring)
	if err != nil {
		return false, err
	}
	if len(leads) == 0 {
		done, err := w.h.d.Store.BulkLeads(ctx, run.ID, store.LeadDone, bitrix24.MaxBatch)
		if err != nil {
			return false, err
		}
		if len(done) == 0 {
			err := w.h.d.Store.SetBulkUndo(ctx, run.ID, store.UndoRunning, store.UndoDone, "", w.h.now())
			if err == nil {
				w.h.d.Logger.InfoContext(ctx, "bulk run undone", "run", run.ID, "member", run.MemberID)
			}
			return false, err
		}
		claim := make([]store.BulkLead, 0, len(done))
		for _, l := range done {
			claim = append(claim, store.BulkLead{LeadID: l.LeadID, State: store.LeadRestoring})
		}
		if err := w.h.d.Store.SettleBulkLeads(ctx, run.ID, w.owner, store.LeadDone, claim); err != nil {
			return false, err
		}
		leads = done
	}
	current, err := w.readLinks(ctx, sess, p, leads)
	if err != nil {
		return false, err
	}
	var settled []store.BulkLead
	var toSet []store.BulkLead
	for _, l := range leads {
		cur := current[l.LeadID]
		switch {
		case cur.err != nil:
			settled = append(settled, w.undone(run, l, cur.err))
		case len(cur.links) == 0:
			toSet = append(toSet, l)
		case sameContacts(cur.links, l.Links):
			// Restored by a batch whose answer was lost.
			settled = append(settled, w.undone(run, l, nil))
		default:
			settled = append(settled, w.undone(run, l, errLeadChanged))
		}
	}
	var failed error
	if len(toSet) > 0 {
		res, err := w.setLinks(ctx, sess, p, toSet)
		for _, l := range toSet {
			var rerr error
			if err == nil {
				rerr = answeredTrue(res, "s"+strconv.FormatInt(l.LeadID, 10), "crm.lead.contact.items.set")
			}
			if err != nil || transient(rerr) || errors.Is(rerr, bitrix24.ErrBadResponse) {
				continue // stays restoring: read back next step
			}
			settled = append(settled, w.undone(run, l, rerr))
		}
		failed = err
	}
	if err := w.h.d.Store.SettleBulkLeads(ctx, run.ID, w.owner, store.LeadRestoring, settled); err != nil {
		return false, err
	}
	return true, failed
}

// setLinks puts the leads' links back, one items.set sub-call each.
func (w *bulkWork) setLinks(ctx context.Context, sess *store.Session, p *store.Portal, leads []store.BulkLead) (*bitrix24.BatchResult, error) {
	cmds := make([]bitrix24.Cmd, 0, len(leads))
	for _, l := range leads {
		cmds = append(cmds, bitrix24.Cmd{Key: "s" + strconv.FormatInt(l.LeadID, 10), Method: "crm.lead.contact.items.set",
			Params: itemsSetParams(l.LeadID, l.Links)})
	}
	return w.h.batchAsUser(ctx, sess, p, false, cmds)
}

// sameContacts reports whether two link lists name the same contacts.
func sameContacts(a, b []store.LeadLink) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y store.LeadLink) bool { return y.ContactID == x.ContactID }) {
			return false
		}
	}
	return true
}

// undone is a lead settled by the undo: restored, kept because it has
// contacts again (LEAD_CHANGED, as the tab's undo records it), or kept
// because Bitrix24 refused; with its history entry.
func (w *bulkWork) undone(run *store.BulkRun, l store.BulkLead, refusal error) store.BulkLead {
	e := &store.HistoryEntry{MemberID: run.MemberID, LeadID: l.LeadID, UserID: w.userID, UserName: w.userName,
		Action: store.ActionUndo, Outcome: store.OutcomeOK, LeadTitle: l.Title, Via: store.ViaBulk, RunID: run.ID}
	for _, k := range l.Links {
		e.ContactIDs = append(e.ContactIDs, k.ContactID)
	}
	out := store.BulkLead{LeadID: l.LeadID, State: store.LeadRestored, History: e}
	switch {
	case errors.Is(refusal, errLeadChanged):
		out.State, out.ErrorCode = store.LeadKept, "LEAD_CHANGED"
		e.Outcome, e.ErrorCode = store.OutcomeRefused, "LEAD_CHANGED"
	case refusal != nil:
		out.State, out.ErrorCode = store.LeadKept, upstreamCode(refusal)
		e.Outcome, e.ErrorCode = store.OutcomeError, out.ErrorCode
	}
	return out
}
