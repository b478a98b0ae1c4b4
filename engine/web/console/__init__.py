"""The staff console: sign-in, campaigns, templates, previews, coupons, rewards, compliance."""
