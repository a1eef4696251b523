"""Reference data: the first reply templates.

The five example replies of the routine (seed file) with their concrete details turned
into placeholders, plus texts in the same voice for no indication, missing information,
acceptance and emergency handling. Written out here so the migration keeps its meaning.
"""

from django.db import migrations
from django.utils import timezone

REASON = "Referensdata (migrering 0003): rutinens exempelsvar"

TEMPLATES = [{'kind': 'rereview_prior_imaging',
  'position': 0,
  'title': 'Eftergranskning – tidigare DT visar fyndet',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Patienten har genomgått flera DT undersökningar, bl a {tidigare_undersokning} '
          '{tidigare_datum}.\n'
          'På denna ses följande: {fynd}\n'
          'En slätröntgen torde inte bidra till något ytterligare och aktuell remiss '
          'återsändes utan åtgärd.'},
 {'kind': 'rereview_prior_imaging',
  'position': 1,
  'title': 'Eftergranskning – DT buk utan kotkompressioner',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Patienten har senast {tidigare_datum} genomgått en {tidigare_undersokning}. {fynd}\n'
          'Någon slätröntgen av ländryggen torde inte bidra till diagnostiken om inget '
          'anmärkningsvärt inträffat sedan dess. Aktuell remiss återsändes utan åtgärd.'},
 {'kind': 'young_no_trauma',
  'position': 0,
  'title': 'Ung patient utan trauma',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'I avsaknad av trauma förefaller inte en röntgenundersökning, med den strålning det '
          'medför, motiverad på denna unga patient.\n'
          'Aktuell remiss återsändes utan åtgärd.'},
 {'kind': 'xray_cannot_assess_metastasis',
  'position': 0,
  'title': 'Slätröntgen kan inte värdera metastaser – tidigare undersökning finns',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Patienten har senast genomgått {tidigare_undersokning} på {tidigare_plats} '
          '{tidigare_datum}. {fynd}\n'
          'En vanlig röntgenundersökning av kotpelaren kan inte användas för att värdera '
          'eventuella metastaser.\n'
          'Aktuell remiss återsändes utan åtgärd.\n'
          'För ev. metastasvärdering föreslås {forslag}.'},
 {'kind': 'xray_cannot_assess_metastasis',
  'position': 1,
  'title': 'Slätröntgen kan inte värdera metastaser – metodbyte ej tillåtet',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'En vanlig röntgenundersökning av kotpelaren kan inte användas för att värdera '
          'eventuella metastaser.\n'
          'Remissen sänds åter, då vi enligt er inte har tillåtelse att ändra '
          'undersökningsmetod.\n'
          'För ev. metastasvärdering föreslås {forslag}.'},
 {'kind': 'method_change_not_allowed',
  'position': 0,
  'title': 'Metodbyte ej tillåtet – kotkompression utan trauma',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Remissen sänds åter, då vi enligt er inte har tillåtelse att ändra '
          'undersökningsmetod.\n'
          'Vi förespråkar {forslag} för denna anamnes. Kotkompression i den åldern förefaller '
          'inte rimligt utan trauma, vilket ej är beskrivet.'},
 {'kind': 'method_change_not_allowed',
  'position': 1,
  'title': 'Metodbyte ej tillåtet',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Remissen sänds åter, då vi enligt er inte har tillåtelse att ändra '
          'undersökningsmetod.\n'
          'Vi förespråkar {forslag} för denna anamnes.'},
 {'kind': 'no_indication',
  'position': 0,
  'title': 'Indikation saknas enligt rutinen',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Enligt vår rutin för ländryggsundersökningar föreligger indikation för '
          'bilddiagnostik vid ländryggssmärta med duration mer än 3–4 veckor och minst en ”röd '
          'flagga”, vid duration mer än 8 veckor i kombination med ”gula flaggor”, eller vid '
          'radikulära smärtor som inte förbättras efter 6 veckor trots behandling.\n'
          'Av remissen framgår inte att något av dessa kriterier är uppfyllt.\n'
          'Aktuell remiss återsändes utan åtgärd.\n'
          'Om patientens besvär förändras eller kvarstår är ni välkomna att skicka en ny '
          'remiss.'},
 {'kind': 'missing_information',
  'position': 0,
  'title': 'Komplettering behövs',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'För att remissen daterad {remissdatum} ska kunna prioriteras enligt vår rutin för '
          'ländryggsundersökningar behövs komplettering: {saknas}.\n'
          'Aktuell remiss återsändes utan åtgärd. Välkommen med en kompletterad remiss.'},
 {'kind': 'accepted',
  'position': 0,
  'title': 'Remissen accepterad',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Remissen daterad {remissdatum} är bedömd enligt vår rutin för '
          'ländryggsundersökningar och accepterad för {atgard} med prioritet {prioritet}.\n'
          'Patienten kallas per brev.'},
 {'kind': 'accepted',
  'position': 1,
  'title': 'Remissen accepterad – ändrad undersökningsmetod',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Vid denna frågeställning är det enligt vår rutin i första hand MR som ska utföras. '
          'Remissen har därför gjorts om och accepterats för {atgard} med prioritet '
          '{prioritet}.\n'
          'Patienten kallas per brev.'},
 {'kind': 'escalated',
  'position': 0,
  'title': 'Handlagd som akut',
  'body': '{datum} Angående remiss för {undersokning}\n'
          'Remissen har handlagts som akut, då anamnesen inger misstanke om ett tillstånd som '
          'inte kan invänta ordinarie prioritering.\n'
          'Remittenten har kontaktats per telefon.\n'
          'Patienten bör undersökas med {atgard} i dag, alternativt snarast möjligt.'}]


def load(apps, schema_editor):
    template = apps.get_model("triage", "ReplyTemplate")
    history = apps.get_model("triage", "HistoricalReplyTemplate")
    for fields in TEMPLATES:
        obj = template.objects.create(is_active=True, **fields)
        values = {f.attname: getattr(obj, f.attname) for f in template._meta.concrete_fields}
        history.objects.create(
            history_date=timezone.now(),
            history_type="+",
            history_change_reason=REASON,
            **values,
        )


class Migration(migrations.Migration):
    dependencies = [("triage", "0002_reference_data")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
