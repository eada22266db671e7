package lang

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUndoMessagesAgreeWithTheNumber checks the issue-5 plurals where
// the grammar bites: Russian (one/few/many) and Arabic (six forms).
func TestUndoMessagesAgreeWithTheNumber(t *testing.T) {
	b, err := Load()
	require.NoError(t, err)
	ru := b.For("ru")
	for n, want := range map[int]string{
		1:  "1 контакт снова привязан к лиду «Сделка».",
		3:  "3 контакта снова привязаны к лиду «Сделка».",
		5:  "5 контактов снова привязано к лиду «Сделка».",
		21: "21 контакт снова привязан к лиду «Сделка».",
	} {
		assert.Equal(t, want, ru.N("undo.done", n, "Title", "Сделка"))
	}
	assert.Equal(t, "Отменить можно в течение 10 минут.", ru.N("undo.hint", 10))
	assert.Equal(t, "Отменить можно в течение 1 минуты.", ru.N("undo.hint", 1))
	assert.Equal(t, "Отвязать 3 контакта от этого лида? Сами контакты останутся в CRM.", ru.N("tab.confirm", 3))

	ar := b.For("ar")
	assert.Equal(t, "rtl", ar.Dir())
	assert.Equal(t, "يمكنك التراجع خلال 10 دقائق.", ar.N("undo.hint", 10))
	assert.Equal(t, "جهتا اتصال", ar.N("history.contacts", 2))

	en := b.For("en")
	assert.Equal(t, "Unlink 3 contacts from this lead? The contacts themselves stay in the CRM.", en.N("tab.confirm", 3))
	assert.Equal(t, "You can undo this for 10 minutes.", en.N("undo.hint", 10))
}
