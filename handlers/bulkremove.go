package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/store"
)

// listPages is how many pages of 50 leads one listing request reads (a
// batch of crm.item.list sub-calls): 500 leads for one request of the
// portal's budget, where a page per request would spend ten.
const listPages = 10

// listedLead is a lead as crm.item.list gives it: its contacts' ids in
// the links' order, and the primary one.
type listedLead struct {
	ID         bitrix24.ID   `json:"id"`
	Title      string        `json:"title"`
	ContactIDs []bitrix24.ID `json:"contactIds"`
	ContactID  bitrix24.ID   `json:"contactId"`
}

// links is the lead's links as the listing shows them: in their order,
// the primary one marked, SORT 10, 20... as placeholders (crm.item.list
// gives the order, not the SORT values). The batch that deletes them
// reads the real values first (deleteUnits), and those are what the
// run keeps for its undo.
func (l listedLead) links() []store.LeadLink {
	out := make([]store.LeadLink, 0, len(l.ContactIDs))
	for i, c := range l.ContactIDs {
		out = append(out, store.LeadLink{ContactID: int64(c), Sort: 10 * (i + 1), Primary: c == l.ContactID})
	}
	return out
}

// bulkUnit is one lead's part of a step: the links the run found on it
// (the snapshot), the ones still to delete, and those already gone when
// it was read back after a lost answer.
type bulkUnit struct {
	lead     store.BulkLead
	toDelete []store.LeadLink
	gone     []store.LeadLink
}

// removeStep does one step of a run: leads claimed by a batch whose
// answer was lost are read back first; otherwise the next leads are
// claimed (listing more when the buffer is empty) and their links deleted
// in one batch of up to 50 sub-calls: per lead, its links read, then one
// crm.lead.contact.delete per link, so a contact linked after the listing
// is never removed unseen.
func (w *bulkWork) removeStep(ctx context.Context, run *store.BulkRun) (bool, error) {
	sess, p, claimed, err := w.begin(ctx, run, store.LeadClaimed)
	if err != nil {
		return false, err
	}
	var units []bulkUnit
	if len(claimed) > 0 {
		if units, err = w.recheck(ctx, run, sess, p, claimed); err != nil {
			return false, err
		}
	} else {
		if len(w.buffer) == 0 && !w.exhausted {
			if err := w.list(ctx, run, sess, p); err != nil {
				return false, err
			}
		}
		if len(w.buffer) == 0 {
			err := w.h.d.Store.SetBulkRunState(ctx, run.ID, []string{store.RunRunning}, store.RunDone, "", "", time.Now())
			if err == nil {
				w.h.d.Logger.InfoContext(ctx, "bulk run done", "run", run.ID, "member", run.MemberID)
			}
			return false, err
		}
		if units, err = w.claimNext(ctx, run); err != nil {
			return false, err
		}
	}
	return true, w.deleteUnits(ctx, run, sess, p, units)
}

// listFilter is the filter of crm.item.list for the run's leads after
// its cursor, as a batch sub-call's parameters.
func listFilter(f store.BulkFilter, cursor int64) url.Values {
	q := url.Values{"entityTypeId": {"1"}, "order[id]": {"ASC"}, "filter[>id]": {strconv.FormatInt(cursor, 10)},
		"select[]": {"id", "title", "contactIds", "contactId"}}
	for _, s := range f.Stages {
		q.Add("filter[@stageId][]", s)
	}
	for _, s := range f.Sources {
		q.Add("filter[@sourceId][]", s)
	}
	if f.ResponsibleID > 0 {
		q.Set("filter[assignedById]", strconv.FormatInt(f.ResponsibleID, 10))
	}
	if f.CreatedFrom != "" {
		q.Set("filter[>=createdTime]", f.CreatedFrom+"T00:00:00")
	}
	if f.CreatedTo != "" {
		q.Set("filter[<=createdTime]", f.CreatedTo+"T23:59:59")
	}
	return q
}

// list reads the next leads after the cursor into the buffer: as many
// pages as the run still expects (at most listPages), in one batch.
func (w *bulkWork) list(ctx context.Context, run *store.BulkRun, sess *store.Session, p *store.Portal) error {
	pages := int(min(max((run.Matched-run.Leads+49)/50, 1), listPages))
	var cmds []bitrix24.Cmd
	for i := range pages {
		q := listFilter(run.Filter, run.Cursor)
		q.Set("start", strconv.Itoa(i*50))
		cmds = append(cmds, bitrix24.Cmd{Key: "l" + strconv.Itoa(i), Method: "crm.item.list", Params: q})
	}
	res, err := w.h.batchAsUser(ctx, sess, p, true, cmds)
	if err != nil {
		return err
	}
	w.buffer = w.buffer[:0]
	for i := range pages {
		var page struct {
			Items []listedLead `json:"items"`
		}
		if err := res.Decode("l"+strconv.Itoa(i), &page); err != nil {
			return err
		}
		w.buffer = append(w.buffer, page.Items...)
	}
	w.exhausted = res.Total["l0"] <= pages*50
	return nil
}

// claimNext takes leads from the buffer up to a batch's 50 sub-calls
// (a read per lead and a delete per link; a lead with more goes alone, in
// several batches), with the leads without links before and among them,
// and claims them all with the cursor moved past them.
func (w *bulkWork) claimNext(ctx context.Context, run *store.BulkRun) ([]bulkUnit, error) {
	var claim []store.BulkLead
	var units []bulkUnit
	n, taken := 0, 0
	for _, l := range w.buffer {
		links := l.links()
		if len(links) > 0 && n > 0 && n+1+len(links) > bitrix24.MaxBatch {
			break
		}
		taken++
		lead := store.BulkLead{LeadID: int64(l.ID), Title: l.Title, Links: links, State: store.LeadClaimed}
		if len(links) == 0 {
			lead.State = store.LeadSkipped
		} else {
			units = append(units, bulkUnit{lead: lead, toDelete: links})
			n += 1 + len(links)
		}
		claim = append(claim, lead)
	}
	cursor := int64(w.buffer[taken-1].ID)
	if err := w.h.d.Store.ClaimBulkLeads(ctx, run.ID, w.owner, cursor, claim); err != nil {
		return nil, err
	}
	w.buffer = w.buffer[taken:]
	return units, nil
}

// recheck reads back, in one batch, the links of leads claimed by a batch
// whose answer was lost (a crash, a timeout): a snapshot link that is gone
// was removed then, one still there is deleted now. Nothing is sent twice.
func (w *bulkWork) recheck(ctx context.Context, run *store.BulkRun, sess *store.Session, p *store.Portal, claimed []store.BulkLead) ([]bulkUnit, error) {
	current, err := w.readLinks(ctx, sess, p, claimed)
	if err != nil {
		return nil, err
	}
	var units []bulkUnit
	var settled []store.BulkLead
	for _, l := range claimed {
		cur := current[l.LeadID]
		if cur.err != nil {
			settled = append(settled, w.outcome(run, bulkUnit{lead: l}, cur.err))
			continue
		}
		u := bulkUnit{lead: l}
		for _, s := range l.Links {
			if slices.ContainsFunc(cur.links, func(c store.LeadLink) bool { return c.ContactID == s.ContactID }) {
				u.toDelete = append(u.toDelete, s)
			} else {
				u.gone = append(u.gone, s)
			}
		}
		if len(u.toDelete) == 0 {
			settled = append(settled, w.outcome(run, u, nil))
			continue
		}
		units = append(units, u)
	}
	w.h.d.Logger.InfoContext(ctx, "bulk run read back leads of a lost batch", "run", run.ID,
		"leads", len(claimed), "to_delete", len(units))
	return units, w.h.d.Store.SettleBulkLeads(ctx, run.ID, w.owner, store.LeadClaimed, settled)
}

// readResult is one lead's links as read, or why they could not be.
type readResult struct {
	links []store.LeadLink
	err   error
}

// readLinks reads the links of up to 50 leads in one batch of
// crm.lead.contact.items.get. A lead's own refusal (ACCESS_DENIED,
// NOT_FOUND) is its result; a transient one fails the whole read.
func (w *bulkWork) readLinks(ctx context.Context, sess *store.Session, p *store.Portal, leads []store.BulkLead) (map[int64]readResult, error) {
	cmds := make([]bitrix24.Cmd, 0, len(leads))
	for _, l := range leads {
		cmds = append(cmds, bitrix24.Cmd{Key: "g" + strconv.FormatInt(l.LeadID, 10), Method: "crm.lead.contact.items.get",
			Params: url.Values{"id": {strconv.FormatInt(l.LeadID, 10)}}})
	}
	res, err := w.h.batchAsUser(ctx, sess, p, false, cmds)
	if err != nil {
		return nil, err
	}
	out := map[int64]readResult{}
	for _, l := range leads {
		var items []leadItem
		err := res.Decode("g"+strconv.FormatInt(l.LeadID, 10), &items)
		if err != nil && (transient(err) || errors.Is(err, bitrix24.ErrBadResponse)) {
			return nil, err
		}
		out[l.LeadID] = readResult{links: linksOf(items), err: err}
	}
	return out, nil
}

// linksOf is what crm.lead.contact.items.get said, as snapshot links.
func linksOf(items []leadItem) []store.LeadLink {
	out := make([]store.LeadLink, 0, len(items))
	for _, it := range items {
		out = append(out, store.LeadLink{ContactID: int64(it.ContactID), Sort: it.Sort, Primary: bool(it.Primary)})
	}
	return out
}

// deleteUnits deletes the units' links, up to 50 sub-calls per batch,
// and settles every lead whose outcome is known; a lead with an unknown
// outcome (a sub-call failed transiently) stays claimed, to be read back
// next step.
//
// Each lead's deletes follow a crm.lead.contact.items.get of it in the
// same batch (Bitrix24 runs a batch's sub-calls in order), so the undo
// puts back each link's real SORT and primary flag as they were just
// before the delete. That costs one sub-call per lead and no request: a
// separate read batch per step would double the requests, the portal's
// scarce budget, while this lowers the links per batch only from 50 to
// 50·k/(k+1) for leads of k links. The listing's placeholders remain
// only for a link whose batch's answer was lost and which was gone when
// read back.
func (w *bulkWork) deleteUnits(ctx context.Context, run *store.BulkRun, sess *store.Session, p *store.Portal, units []bulkUnit) error {
	type ref struct{ unit, link int } // link -1: the lead's read
	var all []ref
	for ui, u := range units {
		all = append(all, ref{ui, -1})
		for li := range u.toDelete {
			all = append(all, ref{ui, li})
		}
	}
	results := make([][]error, len(units))
	for i, u := range units {
		results[i] = make([]error, len(u.toDelete))
	}
	read := make([][]store.LeadLink, len(units))
	var failed error
	for chunk := range slices.Chunk(all, bitrix24.MaxBatch) {
		cmds := make([]bitrix24.Cmd, 0, len(chunk))
		for _, r := range chunk {
			u := units[r.unit]
			lead := strconv.FormatInt(u.lead.LeadID, 10)
			if r.link < 0 {
				cmds = append(cmds, bitrix24.Cmd{Key: "g" + lead, Method: "crm.lead.contact.items.get", Params: url.Values{"id": {lead}}})
				continue
			}
			l := u.toDelete[r.link]
			cmds = append(cmds, bitrix24.Cmd{Key: fmt.Sprintf("d%d_%d", u.lead.LeadID, l.ContactID), Method: "crm.lead.contact.delete",
				Params: url.Values{"id": {lead}, "fields[CONTACT_ID]": {strconv.FormatInt(l.ContactID, 10)}}})
		}
		res, err := w.h.batchAsUser(ctx, sess, p, false, cmds)
		for i, r := range chunk {
			switch {
			case r.link < 0:
				var items []leadItem
				if err == nil && res.Decode(cmds[i].Key, &items) == nil {
					read[r.unit] = linksOf(items)
				}
			case err != nil:
				results[r.unit][r.link] = errors.Join(errUnknownOutcome, err)
			default:
				results[r.unit][r.link] = answeredTrue(res, cmds[i].Key, "crm.lead.contact.delete")
			}
		}
		if err != nil {
			failed = err
			break
		}
	}
	var settled []store.BulkLead
	for i, u := range units {
		if l, ok := w.settled(run, u.asRead(read[i]), results[i]); ok {
			settled = append(settled, l)
		}
	}
	if err := w.h.d.Store.SettleBulkLeads(ctx, run.ID, w.owner, store.LeadClaimed, settled); err != nil {
		return err
	}
	return failed
}

// asRead is the unit with its links' SORT and primary flag as read just
// before their delete; a link the read did not return keeps its own.
func (u bulkUnit) asRead(read []store.LeadLink) bulkUnit {
	withRead := func(links []store.LeadLink) []store.LeadLink {
		out := slices.Clone(links)
		for i, l := range out {
			if j := slices.IndexFunc(read, func(r store.LeadLink) bool { return r.ContactID == l.ContactID }); j >= 0 {
				out[i].Sort, out[i].Primary = read[j].Sort, read[j].Primary
			}
		}
		return out
	}
	u.toDelete, u.gone = withRead(u.toDelete), withRead(u.gone)
	return u
}

// errUnknownOutcome marks a link whose delete may or may not have run.
var errUnknownOutcome = errors.New("outcome unknown")

// settled is a unit's outcome from its links' results, unless one of them
// is unknown (the lead then stays claimed).
func (w *bulkWork) settled(run *store.BulkRun, u bulkUnit, results []error) (store.BulkLead, bool) {
	removed := slices.Clone(u.gone)
	var refusal error
	for i, err := range results {
		switch {
		case err == nil:
			removed = append(removed, u.toDelete[i])
		case errors.Is(err, errUnknownOutcome), transient(err), errors.Is(err, bitrix24.ErrBadResponse):
			return store.BulkLead{}, false
		case errors.Is(err, bitrix24.ErrNotFound) && len(results) > 1:
			// This link was gone already (unlinked by someone else).
		default:
			refusal = cmpErr(refusal, err)
		}
	}
	if refusal == nil && len(removed) == 0 {
		refusal = bitrix24.ErrNotFound
	}
	return w.outcome(run, bulkUnit{lead: u.lead, gone: removed}, refusal), true
}

// cmpErr is a, or b when a is nil.
func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// outcome is a lead settled: done with the links removed (u.gone), or
// refused with Bitrix24's code; either way with its history entry.
func (w *bulkWork) outcome(run *store.BulkRun, u bulkUnit, refusal error) store.BulkLead {
	l := u.lead
	l.Links = u.gone
	if l.Links == nil {
		l.Links = []store.LeadLink{}
	}
	e := &store.HistoryEntry{MemberID: run.MemberID, LeadID: l.LeadID, UserID: w.userID, UserName: w.userName,
		Action: store.ActionRemove, Outcome: store.OutcomeOK, LeadTitle: l.Title, Via: store.ViaBulk, RunID: run.ID}
	for _, k := range l.Links {
		e.ContactIDs = append(e.ContactIDs, k.ContactID)
	}
	l.State = store.LeadDone
	if refusal != nil {
		l.State, l.ErrorCode = store.LeadRefused, upstreamCode(refusal)
		e.Outcome, e.ErrorCode = store.OutcomeError, l.ErrorCode
		if l.ErrorCode == "" {
			l.ErrorCode, e.ErrorCode = "NOT_FOUND", "NOT_FOUND"
		}
	}
	l.History = e
	return l
}
