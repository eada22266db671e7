package simulator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lead stages and sources of a portal with the default CRM settings
// (crm-lead-fields.md, crm.status.list with ENTITY_ID STATUS / SOURCE).
var (
	leadStages  = []string{"NEW", "IN_PROCESS", "PROCESSED", "CONVERTED", "JUNK"}
	leadSources = []string{"CALL", "EMAIL", "WEB", "ADVERTISING", "PARTNER", "RECOMMENDATION", "TRADE_SHOW", "OTHER"}
)

// LeadStages returns the stage codes of the portal's lead pipeline in order.
func LeadStages() []string { return slices.Clone(leadStages) }

// mLeadUpdate is crm.lead.update for the fields the simulator keeps
// (TITLE, NAME, LAST_NAME, STATUS_ID, SOURCE_ID, ASSIGNED_BY_ID). Errors as
// crm-lead-update.md lists them, with the empty code of the classic CRM
// methods. A stage change starts the stage's automation rules, delivered
// asynchronously like Bitrix24's queue (Portal.WaitRobots waits for them).
func (p *Portal) mLeadUpdate(c *callCtx) (result, *apiError) {
	v, ok := c.params.Get("id")
	if !ok {
		v = c.params.vals["ID"]
	}
	id := phpInt(v)
	rec, found := p.leads[id]
	switch {
	case id <= 0:
		return result{}, errEmptyCode("ID is not defined or invalid.")
	case !found:
		return result{}, errEmptyCode("Not found")
	case !c.user.canEdit():
		return result{}, errGetDenied()
	}
	f, _ := c.param("fields").(*omap)
	if f == nil || f.Len() == 0 {
		// SILENT: an update without fields is undocumented; nothing changes.
		return okResult(true)
	}
	next := rec.Lead
	for key, dst := range map[string]*string{"TITLE": &next.Title, "NAME": &next.Name, "LAST_NAME": &next.LastName} {
		if val, has := f.GetFold(key); has {
			*dst = str(val)
		}
	}
	if val, has := f.GetFold("STATUS_ID"); has {
		next.StatusID = strings.ToUpper(str(val))
		if !slices.Contains(leadStages, next.StatusID) {
			// SILENT: Bitrix24 checks stages against the directory; the
			// text of its error is undocumented.
			return result{}, errEmptyCode("Wrong STATUS_ID value.")
		}
	}
	if val, has := f.GetFold("SOURCE_ID"); has {
		next.SourceID = strings.ToUpper(str(val))
	}
	if val, has := f.GetFold("ASSIGNED_BY_ID"); has {
		next.AssignedByID = phpInt(val)
	}
	runs := p.updateLeadLocked(rec, next, c.userID)
	p.deliverRunsAsync(runs)
	return okResult(true)
}

// updateLeadLocked stores a lead's new fields and, when its stage changed,
// starts the automation rules of the new stage (returned, to be delivered
// outside the lock).
func (p *Portal) updateLeadLocked(rec *leadRec, next Lead, byUserID int) []*robotRun {
	moved := next.StatusID != rec.StatusID
	rec.Lead, rec.modified = next, p.s.nowLocked()
	if !moved {
		return nil
	}
	return p.startRobotsLocked(rec, byUserID)
}

// MoveLead is a user moving a lead to another stage in the CRM (the kanban
// or the card): the same checks as crm.lead.update, then the stage's
// automation rules run and are delivered before MoveLead returns, each
// handler's answer recorded on its RobotRun.
func (p *Portal) MoveLead(ctx context.Context, userID, leadID int, stage string) ([]RobotRun, error) {
	p.s.mu.Lock()
	u, ok := p.users[userID]
	rec, found := p.leads[leadID]
	switch {
	case !ok:
		p.s.mu.Unlock()
		return nil, fmt.Errorf("simulator: no user %d", userID)
	case !found:
		p.s.mu.Unlock()
		return nil, fmt.Errorf("simulator: no lead %d", leadID)
	case !u.canEdit():
		p.s.mu.Unlock()
		return nil, fmt.Errorf("simulator: user %d cannot edit lead %d", userID, leadID)
	case !slices.Contains(leadStages, stage):
		p.s.mu.Unlock()
		return nil, fmt.Errorf("simulator: no stage %q", stage)
	}
	next := rec.Lead
	next.StatusID = stage
	runs := p.updateLeadLocked(rec, next, userID)
	p.s.mu.Unlock()
	out := make([]RobotRun, 0, len(runs))
	for _, r := range runs {
		p.deliverRun(ctx, r)
		out = append(out, p.runSnapshot(r))
	}
	return out, nil
}

// BulkOptions configures SeedLeads.
type BulkOptions struct {
	Leads int    // how many leads to add
	Seed  uint64 // the random sequence; the same seed gives the same data
	// WithContacts is the share of leads (0..1) that get one to three new
	// contacts; 0 means 0.3, a negative share none.
	WithContacts float64
	// Days spreads DATE_CREATE over this many days before now; default 365.
	Days int
}

// SeedLeads adds many leads quickly for bulk-run tests and the demo:
// varied stages, sources, responsibles (the portal's users, at least one)
// and creation dates, a share of them with contacts. It returns the IDs
// of the new leads in order.
func (p *Portal) SeedLeads(o BulkOptions) []int {
	if o.WithContacts == 0 {
		o.WithContacts = 0.3
	}
	if o.Days <= 0 {
		o.Days = 365
	}
	// #nosec G404 -- test data, not secrets: the same seed must give the same leads.
	rnd := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	users := sortedKeys(p.users)
	if len(users) == 0 {
		users = []int{1}
	}
	now := p.s.nowLocked()
	ids := make([]int, 0, o.Leads)
	for range o.Leads {
		id := claimID(0, &p.nextLead)
		created := now.Add(-time.Duration(rnd.IntN(o.Days*24*60)) * time.Minute).Truncate(time.Second)
		l := Lead{ID: id, Title: "Bulk lead #" + strconv.Itoa(id), Name: "Lead", LastName: strconv.Itoa(id),
			StatusID: leadStages[rnd.IntN(len(leadStages))], SourceID: leadSources[rnd.IntN(len(leadSources))],
			AssignedByID: users[rnd.IntN(len(users))], Created: created}
		rec := &leadRec{Lead: l, created: created, modified: created}
		if rnd.Float64() < o.WithContacts {
			for i := range 1 + rnd.IntN(3) {
				cid := claimID(0, &p.nextCont)
				p.contacts[cid] = Contact{ID: cid, Name: "Contact", LastName: strconv.Itoa(cid)}
				rec.contacts = append(rec.contacts, LeadContact{ContactID: cid, Sort: 10 * (i + 1), Primary: i == 0})
			}
		}
		p.leads[id] = rec
		ids = append(ids, id)
	}
	return ids
}
