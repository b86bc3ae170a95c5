from django.db import migrations


def open_wallets(apps, schema_editor):
    """Teams made before billing existed get an empty wallet, like every new team."""
    Team = apps.get_model("accounts", "Team")
    Wallet = apps.get_model("billing", "Wallet")
    Wallet.objects.bulk_create(
        [Wallet(team=team) for team in Team.objects.filter(wallet__isnull=True)],
        batch_size=500,
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(open_wallets, migrations.RunPython.noop)]
