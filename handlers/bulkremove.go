package handlers

import (
	"context"
	"errors"
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
// gives the order, not the SORT values). The batch that unlinks them
// reads the real ones first (deleteUnits), and those are what the run
// keeps for its undo.
func (l listedLead) links() []store.LeadLink {
	out := make([]store.LeadLink, 0, len(l.ContactIDs))
	for i, c := range l.ContactIDs {
		out = append(out, store.LeadLink{ContactID: int64(c), Sort: 10 * (i + 1), Primary: c == l.ContactID})
	}
	return out
}

// bulkUnit is one lead's part of a step: the lead as claimed (its links
// as listed), and the links it is known to have lost.
type bulkUnit struct {
	lead store.BulkLead
	gone []store.LeadLink
}

// removeStep does one step of a run: leads claimed by a batch whose
// answer was lost are read back first; otherwise the next leads are
// claimed (listing more when the buffer is empty) and unlinked, 25 leads
// per batch of 50 sub-calls: per lead, its links read and then unlinked
// all at once (see deleteUnits).
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

// claimNext takes from the buffer the next leads that fit in one batch
// (two sub-calls per lead with links, whatever their number), with the
// leads without links before and among them, and claims them all with the
// cursor moved past them.
func (w *bulkWork) claimNext(ctx context.Context, run *store.BulkRun) ([]bulkUnit, error) {
	var claim []store.BulkLead
	var units []bulkUnit
	taken := 0
	for _, l := range w.buffer {
		links := l.links()
		if len(links) > 0 && 2*(len(units)+1) > bitrix24.MaxBatch {
			break
		}
		taken++
		lead := store.BulkLead{LeadID: int64(l.ID), Title: l.Title, Links: links, State: store.LeadClaimed}
		if len(links) == 0 {
			lead.State = store.LeadSkipped
		} else {
			units = append(units, bulkUnit{lead: lead})
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
// whose answer was lost (a crash, a timeout): a lead none of whose listed
// links is left was unlinked then; a lead that still has one was not, and
// is unlinked now. Nothing is sent twice.
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
		left := slices.ContainsFunc(l.Links, func(s store.LeadLink) bool {
			return slices.ContainsFunc(cur.links, func(c store.LeadLink) bool { return c.ContactID == s.ContactID })
		})
		if !left {
			// Unlinked by the lost batch: the listing's view of what went
			// (the read the batch made was lost with its answer).
			settled = append(settled, w.outcome(run, bulkUnit{lead: l, gone: l.Links}, nil))
			continue
		}
		units = append(units, bulkUnit{lead: l})
	}
	w.h.d.Logger.InfoContext(ctx, "bulk run read back leads of a lost batch", "run", run.ID,
		"leads", len(claimed), "to_unlink", len(units))
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

// deleteUnits unlinks the units' leads, 25 per batch, and settles every
// lead whose outcome is known; a lead whose batch lost its answer stays
// claimed, to be read back next step.
//
// Per lead the batch runs crm.lead.contact.items.get and then
// crm.lead.contact.items.delete, as the tab's button does: Bitrix24 runs a
// batch's sub-calls in order, so the read sees exactly what the delete
// takes (a contact linked after the listing included, never unseen), with
// each link's real SORT and primary flag for the undo. Two sub-calls per
// lead whatever its links, so a batch unlinks 25 leads' links: about 50
// links per request for leads of two contacts, more for larger ones.
func (w *bulkWork) deleteUnits(ctx context.Context, run *store.BulkRun, sess *store.Session, p *store.Portal, units []bulkUnit) error {
	var settled []store.BulkLead
	var failed error
	for chunk := range slices.Chunk(units, bitrix24.MaxBatch/2) {
		cmds := make([]bitrix24.Cmd, 0, 2*len(chunk))
		for _, u := range chunk {
			id := url.Values{"id": {strconv.FormatInt(u.lead.LeadID, 10)}}
			lead := strconv.FormatInt(u.lead.LeadID, 10)
			cmds = append(cmds,
				bitrix24.Cmd{Key: "g" + lead, Method: "crm.lead.contact.items.get", Params: id},
				bitrix24.Cmd{Key: "d" + lead, Method: "crm.lead.contact.items.delete", Params: id})
		}
		res, err := w.h.batchAsUser(ctx, sess, p, false, cmds)
		if err != nil {
			failed = err // the chunk's leads stay claimed; later chunks wait
			break
		}
		for _, u := range chunk {
			lead := strconv.FormatInt(u.lead.LeadID, 10)
			derr := answeredTrue(res, "d"+lead, "crm.lead.contact.items.delete")
			switch {
			case derr == nil:
				gone := u.lead.Links
				var items []leadItem
				if res.Decode("g"+lead, &items) == nil {
					gone = linksOf(items)
				}
				settled = append(settled, w.outcome(run, bulkUnit{lead: u.lead, gone: gone}, nil))
			case transient(derr), errors.Is(derr, bitrix24.ErrBadResponse):
				// Whether it ran is unknown: read back next step.
			default:
				settled = append(settled, w.outcome(run, bulkUnit{lead: u.lead}, derr))
			}
		}
	}
	if err := w.h.d.Store.SettleBulkLeads(ctx, run.ID, w.owner, store.LeadClaimed, settled); err != nil {
		return err
	}
	return failed
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
