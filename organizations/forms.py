from django import forms
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.forms import UserCreationForm

from organizations.models import Membership, Role


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_email(self):
        email = BaseUserManager.normalize_email(self.cleaned_data["email"].strip())
        # Only this organization's own members, whose addresses the members page shows anyway:
        # whether the address has an account elsewhere is never looked up.
        if Membership.objects.filter(
            organization=self.organization, user__email__iexact=email
        ).exists():
            raise forms.ValidationError(f"{email} is already a member of {self.organization}.")
        return email


class InvitationAccountForm(UserCreationForm):
    """A new account for the invited address (INVITATIONS_CREATE_ACCOUNTS=1)."""

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        # Set before validation, so the password validators compare against the address too.
        self.instance.email = email
        self.fields["username"].help_text = "You log in with this name. Letters, digits and @.+-_"
