package simulator

import (
	"strings"
)

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
