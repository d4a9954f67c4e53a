"""The provider seam: what the pipeline, the store and the services say about texts, in
no provider's words.

- `message`: the message to send (`OutboundMessage`) and the limits every send obeys.
- `failures`: what can go wrong (`ProviderRejected`, `ProviderUnreachable`, `Unsupported`)
  and what to do about it (`ErrorAction`: the catalog's vocabulary).
- `reports`: what a provider tells us later: the lifecycle of a message (`ProviderStatus`),
  a status update, an inbound message, a message as it lists or fetches it.
- `provider`: the `Provider` protocol every implementation follows.
- `mocked`: test mode's provider, which sends nothing.

`app/twilio/` implements the protocol for Twilio. Nothing here imports a provider.
"""
