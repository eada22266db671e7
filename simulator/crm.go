package simulator

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// pageSize is the fixed page of list methods (list-methods-pecularities.md).
const pageSize = 50

// CRM errors. crm.lead.get / crm.contact.get use an empty code
// (crm-lead-get.md); the crm.lead.contact.* family uses NOT_FOUND and
// ACCESS_DENIED (crm-lead-contact-items-delete.md).
func errEmptyCode(status int, desc string) *apiError {
	return &apiError{status: status, code: "", desc: desc}
}

func errIDInvalid() *apiError { return errEmptyCode(400, "ID is not defined or invalid") }
func errNotFound() *apiError  { return errEmptyCode(400, "Not found") }

// SILENT: crm-lead-get.md says only "40x" for "Access denied"; 403.
func errGetDenied() *apiError { return errEmptyCode(403, "Access denied") }
func errNOTFOUND() *apiError  { return &apiError{status: 400, code: "NOT_FOUND", desc: "Not found."} }

// SILENT: the status of ACCESS_DENIED in this family is undocumented; 403.
func errDenied() *apiError {
	return &apiError{status: 403, code: "ACCESS_DENIED", desc: "Access denied."}
}

func nz(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nzID(id int) any {
	if id == 0 {
		return nil
	}
	return strconv.Itoa(id)
}

func dateTime(t time.Time) string { return t.Format("2006-01-02T15:04:05-07:00") }

// leadRecordLocked renders a lead as crm.lead.get does: IDs as strings, unset
// optional fields as null, CONTACT_ID mirroring the primary contact.
func (p *Portal) leadRecordLocked(rec *leadRec) obj {
	var contactID any
	for _, lc := range rec.contacts {
		if lc.Primary {
			contactID = strconv.Itoa(lc.ContactID)
		}
	}
	semantic := "P"
	switch rec.StatusID {
	case "CONVERTED":
		semantic = "S"
	case "JUNK":
		semantic = "F"
	}
	assigned := rec.AssignedByID
	if assigned == 0 {
		assigned = 1
	}
	return newObj().
		Set("ID", strconv.Itoa(rec.ID)).
		Set("TITLE", rec.Title).
		Set("HONORIFIC", nil).
		Set("NAME", rec.Name).
		Set("SECOND_NAME", nil).
		Set("LAST_NAME", nz(rec.LastName)).
		Set("COMPANY_TITLE", nil).
		Set("COMPANY_ID", nil).
		Set("CONTACT_ID", contactID).
		Set("IS_RETURN_CUSTOMER", "N").
		Set("BIRTHDATE", "").
		Set("SOURCE_ID", "WEB").
		Set("SOURCE_DESCRIPTION", nil).
		Set("STATUS_ID", rec.StatusID).
		Set("STATUS_DESCRIPTION", nil).
		Set("POST", nil).
		Set("COMMENTS", nil).
		Set("CURRENCY_ID", "USD").
		Set("OPPORTUNITY", "0.00").
		Set("IS_MANUAL_OPPORTUNITY", "N").
		Set("HAS_PHONE", "N").
		Set("HAS_EMAIL", "N").
		Set("HAS_IMOL", "N").
		Set("ASSIGNED_BY_ID", strconv.Itoa(assigned)).
		Set("CREATED_BY_ID", strconv.Itoa(assigned)).
		Set("MODIFY_BY_ID", strconv.Itoa(assigned)).
		Set("DATE_CREATE", dateTime(rec.created)).
		Set("DATE_MODIFY", dateTime(rec.modified)).
		Set("DATE_CLOSED", "").
		Set("STATUS_SEMANTIC_ID", semantic).
		Set("OPENED", "Y").
		Set("ORIGINATOR_ID", nil).
		Set("ORIGIN_ID", nil).
		Set("MOVED_BY_ID", strconv.Itoa(assigned)).
		Set("MOVED_TIME", dateTime(rec.created)).
		Set("ADDRESS", nil).
		Set("UTM_SOURCE", nil).
		Set("LAST_ACTIVITY_BY", strconv.Itoa(assigned)).
		Set("LAST_ACTIVITY_TIME", dateTime(rec.modified))
}

func (p *Portal) contactRecordLocked(c Contact) obj {
	return newObj().
		Set("ID", strconv.Itoa(c.ID)).
		Set("HONORIFIC", nil).
		Set("NAME", c.Name).
		Set("SECOND_NAME", nz(c.SecondName)).
		Set("LAST_NAME", nz(c.LastName)).
		Set("PHOTO", nil).
		Set("BIRTHDATE", "").
		Set("TYPE_ID", "CLIENT").
		Set("SOURCE_ID", "SELF").
		Set("SOURCE_DESCRIPTION", nil).
		Set("POST", nz(c.Post)).
		Set("COMMENTS", nil).
		Set("OPENED", "Y").
		Set("EXPORT", "Y").
		Set("HAS_PHONE", "N").
		Set("HAS_EMAIL", "N").
		Set("HAS_IMOL", "N").
		Set("ASSIGNED_BY_ID", "1").
		Set("CREATED_BY_ID", "1").
		Set("MODIFY_BY_ID", "1").
		Set("COMPANY_ID", nzID(c.CompanyID)).
		Set("LEAD_ID", nil)
}

// entityID reads "id" or "ID" as crm.lead.get / crm.contact.get accept both.
func entityID(c *callCtx) int {
	if v, ok := c.params.Get("id"); ok {
		return phpInt(v)
	}
	if v, ok := c.params.Get("ID"); ok {
		return phpInt(v)
	}
	return 0
}

func (p *Portal) mLeadGet(c *callCtx) (result, *apiError) {
	id := entityID(c)
	if id <= 0 {
		return result{}, errIDInvalid()
	}
	// Bitrix24 checks the read permission before existence.
	if !c.user.canRead() {
		return result{}, errGetDenied()
	}
	rec, ok := p.leads[id]
	if !ok {
		return result{}, errNotFound()
	}
	return okResult(p.leadRecordLocked(rec))
}

func (p *Portal) mContactGet(c *callCtx) (result, *apiError) {
	id := entityID(c)
	if id <= 0 {
		return result{}, errIDInvalid()
	}
	if !c.user.canRead() {
		return result{}, errGetDenied()
	}
	ct, found := p.contacts[id]
	if !found {
		return result{}, errNotFound()
	}
	return okResult(p.contactRecordLocked(ct))
}

func (p *Portal) mLeadList(c *callCtx) (result, *apiError) {
	if !c.user.canRead() {
		// SILENT: a user without read rights gets an error rather than an
		// empty list.
		return result{}, errGetDenied()
	}
	recs := make([]obj, 0, len(p.leads))
	for _, rec := range p.leads {
		recs = append(recs, p.leadRecordLocked(rec))
	}
	return listResult(c, recs)
}

func (p *Portal) mContactList(c *callCtx) (result, *apiError) {
	if !c.user.canRead() {
		return result{}, errGetDenied()
	}
	recs := make([]obj, 0, len(p.contacts))
	for _, ct := range p.contacts {
		recs = append(recs, p.contactRecordLocked(ct))
	}
	return listResult(c, recs)
}

// listResult applies filter, order, select and start like the classic CRM
// list methods, 50 per page, with total and (when more remain) next.
func listResult(c *callCtx, recs []obj) (result, *apiError) {
	filter, _ := first(c.param("filter")).(*omap)
	var kept []obj
	for _, r := range recs {
		if matchFilter(r, filter) {
			kept = append(kept, r)
		}
	}
	order, _ := first(c.param("order")).(*omap)
	sortRecords(kept, order)
	total := len(kept)
	start := phpInt(first(c.param("start")))
	if start < 0 {
		start = 0
	}
	end := min(start+pageSize, total)
	page := []any{}
	sel := selectFields(first(c.param("select")))
	for i := start; i < end; i++ {
		page = append(page, project(kept[i], sel))
	}
	res := result{value: page, total: &total}
	if end < total {
		next := end
		res.next = &next
	}
	return res, nil
}

func selectFields(v any) []string {
	var out []string
	for _, e := range list(v) {
		if s := strings.ToUpper(strings.TrimSpace(str(e))); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// project keeps the selected fields; no select or "*" means all standard
// fields. SILENT: ID always comes back, as list consumers page by it.
func project(r obj, sel []string) obj {
	if len(sel) == 0 {
		return r
	}
	out := newObj()
	for _, k := range r.keys {
		want := k == "ID"
		for _, s := range sel {
			if s == "*" || s == k {
				want = true
			}
		}
		if want {
			out.Set(k, r.vals[k])
		}
	}
	return out
}

func matchFilter(r obj, filter *omap) bool {
	if filter == nil {
		return true
	}
	for _, key := range filter.keys {
		op, field := "=", key
		// Longest prefixes first.
		for _, o := range []string{">=", "<=", "!@", "!=", "=%", "%=", ">", "<", "@", "%", "=", "!"} {
			if strings.HasPrefix(key, o) {
				op, field = o, key[len(o):]
				break
			}
		}
		field = strings.ToUpper(field)
		val, has := r.vals[field]
		if !has {
			continue // SILENT: unknown filter fields are ignored
		}
		have := str(val)
		want := filter.vals[key]
		switch op {
		case "@", "!@":
			in := false
			for _, e := range list(want) {
				if cmpValues(have, str(e)) == 0 {
					in = true
				}
			}
			if in != (op == "@") {
				return false
			}
		case "%":
			if !strings.Contains(strings.ToLower(have), strings.ToLower(str(want))) {
				return false
			}
		case "=%", "%=":
			if !likeMatch(strings.ToLower(have), strings.ToLower(str(want))) {
				return false
			}
		default:
			c := cmpValues(have, str(want))
			pass := map[string]bool{"=": c == 0, "!": c != 0, "!=": c != 0, ">": c > 0, ">=": c >= 0, "<": c < 0, "<=": c <= 0}[op]
			if !pass {
				return false
			}
		}
	}
	return true
}

// likeMatch implements SQL LIKE with % wildcards.
func likeMatch(s, pattern string) bool {
	parts := strings.Split(pattern, "%")
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, part := range parts[1:] {
		last := i == len(parts)-2
		if last {
			return strings.HasSuffix(s, part)
		}
		idx := strings.Index(s, part)
		if idx < 0 {
			return false
		}
		s = s[idx+len(part):]
	}
	return true
}

// cmpValues compares numerically when both sides are integers.
func cmpValues(a, b string) int {
	if x, err := strconv.Atoi(a); err == nil {
		if y, err := strconv.Atoi(b); err == nil {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

// sortRecords orders by the given fields; SILENT: the default order of these
// deprecated list methods is undocumented, ID ascending is used.
func sortRecords(recs []obj, order *omap) {
	type key struct {
		field string
		desc  bool
	}
	var keys []key
	if order != nil {
		for _, k := range order.keys {
			keys = append(keys, key{strings.ToUpper(k), strings.EqualFold(str(order.vals[k]), "DESC")})
		}
	}
	keys = append(keys, key{"ID", false})
	sort.SliceStable(recs, func(i, j int) bool {
		for _, k := range keys {
			c := cmpValues(str(recs[i].vals[k.field]), str(recs[j].vals[k.field]))
			if c == 0 {
				continue
			}
			if k.desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
}

// ---- crm.lead.contact.* ----

// leadForLinks resolves the documented lowercase "id" and checks existence
// and rights. SILENT: only lowercase "id" is accepted as documented, and
// existence is checked before rights (order undocumented).
func (p *Portal) leadForLinks(c *callCtx, write bool) (*leadRec, *apiError) {
	v, has := c.params.Get("id")
	id := phpInt(v)
	if !has || id <= 0 {
		return nil, errEmptyCode(400, "The parameter 'id' is not defined or invalid.")
	}
	rec, found := p.leads[id]
	if !found {
		return nil, errNOTFOUND()
	}
	if (write && !c.user.canEdit()) || (!write && !c.user.canRead()) {
		return nil, errDenied()
	}
	return rec, nil
}

func (p *Portal) touch(rec *leadRec) { rec.modified = p.s.nowLocked() }

func (p *Portal) mLeadContactItemsGet(c *callCtx) (result, *apiError) {
	rec, e := p.leadForLinks(c, false)
	if e != nil {
		return result{}, e
	}
	out := []any{}
	for _, lc := range rec.contacts {
		prim := "N"
		if lc.Primary {
			prim = "Y"
		}
		out = append(out, newObj().
			Set("CONTACT_ID", lc.ContactID).
			Set("SORT", lc.Sort).
			Set("ROLE_ID", lc.RoleID).
			Set("IS_PRIMARY", prim))
	}
	return okResult(out)
}

// linkFields reads {CONTACT_ID*, SORT, IS_PRIMARY} of one item.
func (p *Portal) linkFields(v any, defSort int) (LeadContact, *apiError) {
	m, isMap := v.(*omap)
	if !isMap {
		return LeadContact{}, errEmptyCode(400, "The parameter 'fields' must be array.")
	}
	id := phpInt(first(m.GetFold("CONTACT_ID")))
	if id <= 0 {
		return LeadContact{}, errEmptyCode(400, "The field 'CONTACT_ID' is required.")
	}
	if _, found := p.contacts[id]; !found {
		// SILENT: linking a missing contact is undocumented; NOT_FOUND.
		return LeadContact{}, errNOTFOUND()
	}
	sortV, hasSort := m.GetFold("SORT")
	srt := defSort
	if hasSort {
		srt = phpInt(sortV)
	}
	return LeadContact{ContactID: id, Sort: srt, Primary: strings.EqualFold(str(first(m.GetFold("IS_PRIMARY"))), "Y")}, nil
}

func (p *Portal) mLeadContactItemsSet(c *callCtx) (result, *apiError) {
	rec, e := p.leadForLinks(c, true)
	if e != nil {
		return result{}, e
	}
	itemsV, has := c.params.Get("items")
	_, isList := itemsV.([]any)
	_, isMap := itemsV.(*omap)
	if !has || (!isList && !isMap) {
		return result{}, errEmptyCode(400, "The parameter 'items' must be array.")
	}
	// SILENT: an empty items list clears the links, and a contact listed
	// twice is linked once.
	var links []LeadContact
	seen := map[int]bool{}
	for i, it := range list(itemsV) {
		lc, e := p.linkFields(it, 10*(i+1))
		if e != nil {
			return result{}, e
		}
		if seen[lc.ContactID] {
			continue
		}
		seen[lc.ContactID] = true
		links = append(links, lc)
	}
	rec.contacts = normalizeLinks(links, 0, false)
	p.touch(rec)
	return okResult(true)
}

func (p *Portal) mLeadContactItemsDelete(c *callCtx) (result, *apiError) {
	rec, e := p.leadForLinks(c, true)
	if e != nil {
		return result{}, e
	}
	// SILENT: on a lead with no contacts the docs do not say; true.
	rec.contacts = nil
	p.touch(rec)
	return okResult(true)
}

func (p *Portal) mLeadContactAdd(c *callCtx) (result, *apiError) {
	rec, e := p.leadForLinks(c, true)
	if e != nil {
		return result{}, e
	}
	lc, e := p.linkFields(first(c.params.Get("fields")), 10)
	if e != nil {
		return result{}, e
	}
	for _, have := range rec.contacts {
		if have.ContactID == lc.ContactID {
			// SILENT: adding an existing link is undocumented; an error.
			return result{}, errEmptyCode(400, "The contact is already bound to the lead.")
		}
	}
	rec.contacts = normalizeLinks(append(rec.contacts, lc), lc.ContactID, lc.Primary)
	p.touch(rec)
	return okResult(true)
}

func (p *Portal) mLeadContactDelete(c *callCtx) (result, *apiError) {
	rec, e := p.leadForLinks(c, true)
	if e != nil {
		return result{}, e
	}
	fields, _ := first(c.params.Get("fields")).(*omap)
	id := phpInt(first(fields.GetFold("CONTACT_ID")))
	if id <= 0 {
		return result{}, errEmptyCode(400, "The field 'CONTACT_ID' is required.")
	}
	kept := []LeadContact{}
	for _, lc := range rec.contacts {
		if lc.ContactID != id {
			kept = append(kept, lc)
		}
	}
	if len(kept) == len(rec.contacts) {
		// SILENT: deleting a link that does not exist is undocumented.
		return result{}, errNOTFOUND()
	}
	rec.contacts = normalizeLinks(kept, 0, false)
	p.touch(rec)
	return okResult(true)
}

func (p *Portal) mLeadContactFields(c *callCtx) (result, *apiError) {
	field := func(typ string, required bool, title string) obj {
		return newObj().
			Set("type", typ).
			Set("isRequired", required).
			Set("isReadOnly", false).
			Set("isImmutable", false).
			Set("isMultiple", false).
			Set("isDynamic", false).
			Set("title", title)
	}
	return okResult(newObj().
		Set("SORT", field("integer", false, "Sorting")).
		Set("IS_PRIMARY", field("char", false, "Primary")).
		Set("CONTACT_ID", field("integer", true, "Contact")))
}
