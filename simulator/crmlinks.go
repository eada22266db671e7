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
		return nil, errEmptyCode("The parameter 'id' is not defined or invalid.")
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

func (p *Portal) mLeadContactItemsGet(c *callCtx) (result, *apiError) {
	rec, e := p.leadForLinks(c, false)
	if e != nil {
		return result{}, e
	}
	out := []any{}
	for _, lc := range rec.contacts {
		out = append(out, fields("CONTACT_ID", lc.ContactID, "SORT", lc.Sort, "ROLE_ID", lc.RoleID, "IS_PRIMARY", yn(lc.Primary)))
	}
	return okResult(out)
}

// linkEdit computes a lead's new links from its current ones.
type linkEdit func(c *callCtx, have []LeadContact) ([]LeadContact, *apiError)

// editLinks is one of the methods that change a lead's links: the lead is
// resolved for writing, then the new links are stored and the lead touched.
func (p *Portal) editLinks(edit linkEdit) methodFunc {
	return func(c *callCtx) (result, *apiError) {
		rec, e := p.leadForLinks(c, true)
		if e != nil {
			return result{}, e
		}
		links, e := edit(c, rec.contacts)
		if e != nil {
			return result{}, e
		}
		rec.contacts, rec.modified = links, p.s.nowLocked()
		return okResult(true)
	}
}

// linkFields reads {CONTACT_ID*, SORT, IS_PRIMARY} of one item.
func (p *Portal) linkFields(v any, defSort int) (LeadContact, *apiError) {
	m, isMap := v.(*omap)
	if !isMap {
		return LeadContact{}, errEmptyCode("The parameter 'fields' must be array.")
	}
	id := phpInt(m.fold("CONTACT_ID"))
	if id <= 0 {
		return LeadContact{}, errEmptyCode("The field 'CONTACT_ID' is required.")
	}
	if _, found := p.contacts[id]; !found {
		// SILENT: linking a missing contact is undocumented; NOT_FOUND.
		return LeadContact{}, errNOTFOUND()
	}
	srt := defSort
	if sortV, hasSort := m.GetFold("SORT"); hasSort {
		srt = phpInt(sortV)
	}
	return LeadContact{ContactID: id, Sort: srt, Primary: strings.EqualFold(str(m.fold("IS_PRIMARY")), "Y")}, nil
}

// itemsSet is crm.lead.contact.items.set. SILENT: an empty items list
// clears the links, and a contact listed twice is linked once.
func (p *Portal) itemsSet(c *callCtx, _ []LeadContact) ([]LeadContact, *apiError) {
	itemsV, has := c.params.Get("items")
	_, isList := itemsV.([]any)
	_, isMap := itemsV.(*omap)
	if !has || (!isList && !isMap) {
		return nil, errEmptyCode("The parameter 'items' must be array.")
	}
	var links []LeadContact
	seen := map[int]bool{}
	for i, it := range list(itemsV) {
		lc, e := p.linkFields(it, 10*(i+1))
		if e != nil {
			return nil, e
		}
		if !seen[lc.ContactID] {
			seen[lc.ContactID] = true
			links = append(links, lc)
		}
	}
	return normalizeLinks(links, 0, false), nil
}

// itemsDelete is crm.lead.contact.items.delete. SILENT: on a lead with no
// contacts the docs do not say; true.
func itemsDelete(*callCtx, []LeadContact) ([]LeadContact, *apiError) { return nil, nil }

// linkAdd is crm.lead.contact.add.
func (p *Portal) linkAdd(c *callCtx, have []LeadContact) ([]LeadContact, *apiError) {
	fieldsV, _ := c.params.Get("fields")
	lc, e := p.linkFields(fieldsV, 10)
	if e != nil {
		return nil, e
	}
	for _, l := range have {
		if l.ContactID == lc.ContactID {
			// SILENT: adding an existing link is undocumented; an error.
			return nil, errEmptyCode("The contact is already bound to the lead.")
		}
	}
	return normalizeLinks(append(have, lc), lc.ContactID, lc.Primary), nil
}

// linkDelete is crm.lead.contact.delete.
func linkDelete(c *callCtx, have []LeadContact) ([]LeadContact, *apiError) {
	fieldsV, _ := c.params.Get("fields")
	m, _ := fieldsV.(*omap)
	id := phpInt(m.fold("CONTACT_ID"))
	if id <= 0 {
		return nil, errEmptyCode("The field 'CONTACT_ID' is required.")
	}
	kept := []LeadContact{}
	for _, lc := range have {
		if lc.ContactID != id {
			kept = append(kept, lc)
		}
	}
	if len(kept) == len(have) {
		// SILENT: deleting a link that does not exist is undocumented.
		return nil, errNOTFOUND()
	}
	return normalizeLinks(kept, 0, false), nil
}

func mLeadContactFields(*callCtx) (result, *apiError) {
	field := func(typ string, required bool, title string) obj {
		return fields("type", typ, "isRequired", required, "isReadOnly", false, "isImmutable", false,
			"isMultiple", false, "isDynamic", false, "title", title)
	}
	return okResult(fields("SORT", field("integer", false, "Sorting"), "IS_PRIMARY", field("char", false, "Primary"),
		"CONTACT_ID", field("integer", true, "Contact")))
}
