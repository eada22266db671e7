package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/store"
)

// BulkQueue enqueues the work of a bulk run (the job engine does it).
type BulkQueue interface {
	EnqueueBulkRun(ctx context.Context, id int64) error
}

// bulkSection is the admins' page's bulk run card: the filter form with
// the portal's stages and sources, a count, and the latest run.
type bulkSection struct {
	Action, StatusAction string
	Stages, Sources      []bulkOption
	Filter               store.BulkFilter
	Counted              bool
	Leads, Links         int
	LinksAtLeast         bool // more leads than one count reads: Links is a floor
	Run                  *bulkView
}

type bulkOption struct {
	Code, Name string
	Selected   bool
}

// bulkView is a run as the page and its status poll show it.
type bulkView struct {
	ID       int64  `json:"id"`
	State    string `json:"state"`
	Text     string `json:"text"`
	Code     string `json:"code,omitempty"`
	Matched  int64  `json:"matched"`
	Leads    int64  `json:"leads"`
	Removed  int64  `json:"removed"`
	Refused  int64  `json:"refused"`
	Restored int64  `json:"restored"`
	Kept     int64  `json:"kept"`
	Active   bool   `json:"active"`
	// What the buttons may do now.
	CanPause  bool `json:"can_pause"`
	CanResume bool `json:"can_resume"`
	CanCancel bool `json:"can_cancel"`
	CanUndo   bool `json:"can_undo"`
}

func newBulkView(r *store.BulkRun, loc *lang.Localizer, now time.Time) *bulkView {
	v := &bulkView{ID: r.ID, State: r.State, Code: r.ErrorCode, Matched: max(r.Matched, r.Leads), Leads: r.Leads,
		Removed: r.Removed, Refused: r.Refused, Restored: r.Restored, Kept: r.Kept, Active: r.Active()}
	v.Text = loc.T("app.bulk_state_" + r.State)
	switch r.UndoState {
	case store.UndoRunning:
		v.Text = loc.T("app.bulk_state_undoing")
	case store.UndoDone:
		v.Text = loc.T("app.bulk_state_undone")
	}
	v.CanPause = r.State == store.RunQueued || r.State == store.RunRunning
	v.CanResume = r.State == store.RunPaused
	v.CanCancel = r.Active() && r.UndoState == store.UndoNone
	v.CanUndo = !r.Active() && r.UndoState == store.UndoNone && r.Removed > 0 && now.Before(r.UndoUntil)
	return v
}

// pageCommands are the admins' page's batch: the admin, the app and
// the names the history lacks (adminCommands), and the bulk card's
// stages and sources.
func pageCommands(entries []store.HistoryEntry, scope string) []bitrix24.Cmd {
	return append(adminCommands(unnamedUsers(entries, scope)), statusCommands()...)
}

// statusCommands read the portal's lead stages and sources for the form.
func statusCommands() []bitrix24.Cmd {
	return []bitrix24.Cmd{
		{Key: "stages", Method: "crm.status.list", Params: url.Values{"filter[ENTITY_ID]": {"STATUS"}, "order[SORT]": {"ASC"}}},
		{Key: "sources", Method: "crm.status.list", Params: url.Values{"filter[ENTITY_ID]": {"SOURCE"}, "order[SORT]": {"ASC"}}},
	}
}

// fillBulk puts the bulk card on an admin page: the stages and sources of
// res (the page's batch; none when it could not read them, and the form
// then filters without them), f as chosen, and the portal's latest run.
func (h *Handlers) fillBulk(ctx context.Context, page *adminPage, loc *lang.Localizer, p *store.Portal, res *bitrix24.BatchResult, f store.BulkFilter) {
	b := &bulkSection{Action: h.cfg.Manifest.Handler + "/bulk?LANG=" + url.QueryEscape(loc.Code()),
		StatusAction: h.cfg.Manifest.Handler + "/bulk/status", Filter: f}
	for key, dst := range map[string]*[]bulkOption{"stages": &b.Stages, "sources": &b.Sources} {
		var items []struct {
			StatusID string `json:"STATUS_ID"`
			Name     string `json:"NAME"`
		}
		if res == nil || res.Decode(key, &items) != nil {
			continue
		}
		chosen := f.Stages
		if key == "sources" {
			chosen = f.Sources
		}
		for _, it := range items {
			o := bulkOption{Code: it.StatusID, Name: it.Name}
			for _, c := range chosen {
				o.Selected = o.Selected || c == it.StatusID
			}
			*dst = append(*dst, o)
		}
	}
	if r, err := h.d.Store.LatestBulkRun(ctx, p.MemberID); err == nil {
		b.Run = newBulkView(r, loc, h.now())
		if !b.Run.Active && f.Stages == nil && f.Sources == nil {
			b.Filter = r.Filter
		}
	}
	page.Bulk = b
}

// dateRE is a date of the filter form (input type=date): YYYY-MM-DD.
var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// bulkFilterOf reads the filter form. Codes are kept only if they look
// like codes: they go into the filter of a REST call, never into its
// structure.
func bulkFilterOf(form url.Values) (store.BulkFilter, error) {
	var f store.BulkFilter
	code := regexp.MustCompile(`^[A-Za-z0-9_:\-]{1,50}$`)
	for _, s := range form["stage"] {
		if !code.MatchString(s) {
			return f, errors.New("bad stage")
		}
		f.Stages = append(f.Stages, s)
	}
	for _, s := range form["source"] {
		if !code.MatchString(s) {
			return f, errors.New("bad source")
		}
		f.Sources = append(f.Sources, s)
	}
	if v := form.Get("responsible"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return f, errors.New("bad responsible")
		}
		f.ResponsibleID = n
	}
	for _, d := range []struct {
		key string
		dst *string
	}{{"from", &f.CreatedFrom}, {"to", &f.CreatedTo}} {
		if v := form.Get(d.key); v != "" {
			if _, err := time.Parse("2006-01-02", v); err != nil || !dateRE.MatchString(v) {
				return f, errors.New("bad date")
			}
			*d.dst = v
		}
	}
	return f, nil
}

// bulkStatus answers the page's poll with the latest run, as JSON.
func (h *Handlers) bulkStatus(ctx context.Context, c *gin.Context, sess *store.Session, p *store.Portal) error {
	r, err := h.d.Store.LatestBulkRun(ctx, p.MemberID)
	if errors.Is(err, store.ErrNotFound) {
		c.JSON(http.StatusOK, gin.H{})
		return nil
	}
	if err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, newBulkView(r, h.d.Lang.For(sess.Lang), h.now()))
	return nil
}

// countLeads counts the leads f matches and their links, in one batch of
// up to 50 pages of crm.item.list (2,500 leads); past that, the links
// counted are a floor.
func (h *Handlers) countLeads(ctx context.Context, sess *store.Session, p *store.Portal, f store.BulkFilter) (leads, links int, atLeast bool, err error) {
	cmds := make([]bitrix24.Cmd, 0, bitrix24.MaxBatch)
	for i := range bitrix24.MaxBatch {
		q := listFilter(f, 0)
		q["select[]"] = []string{"id", "contactIds"}
		q.Set("start", strconv.Itoa(i*50))
		cmds = append(cmds, bitrix24.Cmd{Key: "l" + strconv.Itoa(i), Method: "crm.item.list", Params: q})
		if i == 0 {
			// The first page alone says how many pages there are.
			break
		}
	}
	res, err := h.batchAsUser(ctx, sess, p, true, cmds)
	if err != nil {
		return 0, 0, false, err
	}
	leads = res.Total["l0"]
	pages := min((leads+49)/50, bitrix24.MaxBatch)
	if pages > 1 {
		for i := 1; i < pages; i++ {
			q := listFilter(f, 0)
			q["select[]"] = []string{"id", "contactIds"}
			q.Set("start", strconv.Itoa(i*50))
			cmds = append(cmds, bitrix24.Cmd{Key: "l" + strconv.Itoa(i), Method: "crm.item.list", Params: q})
		}
		if res, err = h.batchAsUser(ctx, sess, p, true, cmds); err != nil {
			return 0, 0, false, err
		}
	}
	for i := range max(pages, 1) {
		var page struct {
			Items []listedLead `json:"items"`
		}
		if err := res.Decode("l"+strconv.Itoa(i), &page); err != nil {
			return 0, 0, false, err
		}
		for _, l := range page.Items {
			links += len(l.ContactIDs)
		}
	}
	return leads, links, leads > pages*50, nil
}
