package simulator

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// leadListPath is the lead list page, where CRM_LEAD_LIST_MENU opens.
const leadListPath = "/crm/lead/list/"

// leadListMenu is CRM_LEAD_LIST_MENU (testdata/recorded/frame_lead_list_menu.json,
// widgets/crm/list-menu.md): its URI is the list page's path (the
// Referer, as for the tab).
var leadListMenu = leadPlacement{"CRM_LEAD_LIST_MENU", func(string) string { return leadListPath }}

// OpenLeadListMenu builds the POST Bitrix24 sends into the slider when the
// user picks our item in a lead row's menu (Bitrix24 Market submenu) on
// the lead list. It fails like OpenLeadTab: install not finished, no such
// placement bound, or a user who cannot see the lead.
func (p *Portal) OpenLeadListMenu(userID, leadID int, lang string) (Frame, error) {
	return p.openLead(leadListMenu, userID, leadID, 0, lang)
}

// leadListPage is the lead list: filters, pages of 50, a row menu with
// one item per CRM_LEAD_LIST_MENU handler, and the slider it opens.
type leadListPage struct {
	framePage
	Rows        []listRow
	MenuItems   []menuItem
	FStatus     string // the filters, kept in the forms and links
	FSource     string
	FAssigned   string
	StageList   []string
	SourceList  []string
	Total       int
	Page, Pages int
	PrevHref    string
	NextHref    string
	SliderOpen  bool
	SliderClose string
}

type listRow struct {
	ID                  int
	Title, Stage, Owner string
	Source              string
	Created             string
	Contacts            int
	Menu                []menuLink
}

type menuItem struct{ Title string }

type menuLink struct{ Title, Href string }

func (p *Portal) leadList(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	base.Title = "Leads"
	if !base.User.canRead() {
		return p.message(base, http.StatusForbidden, "Access denied", "You may not view leads.", false)
	}
	q := r.URL.Query()
	pg := leadListPage{framePage: framePage{pageBase: base}, FStatus: q.Get("status"), FSource: q.Get("source"),
		FAssigned: q.Get("assigned"), StageList: leadStages, SourceList: leadSources}
	filter := url.Values{}
	for _, k := range []string{"status", "source", "assigned"} {
		if v := q.Get(k); v != "" {
			filter.Set(k, v)
		}
	}
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)

	p.s.mu.Lock()
	var ids []int
	for _, id := range sortedKeys(p.leads) {
		l := p.leads[id]
		if (pg.FStatus == "" || l.StatusID == pg.FStatus) && (pg.FSource == "" || l.SourceID == pg.FSource) &&
			(pg.FAssigned == "" || strconv.Itoa(l.AssignedByID) == pg.FAssigned) {
			ids = append(ids, id)
		}
	}
	if p.state == installed {
		for _, b := range p.bindingsLocked("CRM_LEAD_LIST_MENU") {
			pg.MenuItems = append(pg.MenuItems, menuItem{Title: tabTitle(b, base.Lang)})
		}
	}
	pg.Total, pg.Pages = len(ids), max(1, (len(ids)+pageSize-1)/pageSize)
	page = min(page, pg.Pages)
	pg.Page = page
	for _, id := range ids[(page-1)*pageSize : min(page*pageSize, len(ids))] {
		l := p.leads[id]
		owner := p.users[l.AssignedByID]
		row := listRow{ID: id, Title: l.Title, Stage: l.StatusID, Source: l.SourceID, Contacts: len(l.contacts),
			Owner: strings.TrimSpace(owner.Name + " " + owner.LastName), Created: l.created.Format("2006-01-02")}
		for i, m := range pg.MenuItems {
			v := cloneValues(filter)
			v.Set("page", strconv.Itoa(page))
			v.Set("menu", strconv.Itoa(id))
			v.Set("app", strconv.Itoa(i))
			row.Menu = append(row.Menu, menuLink{Title: m.Title, Href: leadListPath + "?" + v.Encode()})
		}
		pg.Rows = append(pg.Rows, row)
	}
	p.s.mu.Unlock()

	link := func(n int) string {
		v := cloneValues(filter)
		v.Set("page", strconv.Itoa(n))
		return leadListPath + "?" + v.Encode()
	}
	if page > 1 {
		pg.PrevHref = link(page - 1)
	}
	if page < pg.Pages {
		pg.NextHref = link(page + 1)
	}
	pg.SliderClose = link(page)
	if menuID, err := strconv.Atoi(q.Get("menu")); err == nil {
		n, _ := strconv.Atoi(q.Get("app"))
		pg.SliderOpen = true
		if f, err := p.openLead(leadListMenu, base.User.ID, menuID, n, base.Lang); err != nil {
			pg.Error = strings.TrimPrefix(err.Error(), "simulator: ")
		} else {
			p.frameFields(&pg.framePage, f, "placement", leadListMenu.code, leadListMenu.options(p, menuID), menuID)
		}
	}
	return "leadlist", pg, http.StatusOK
}
