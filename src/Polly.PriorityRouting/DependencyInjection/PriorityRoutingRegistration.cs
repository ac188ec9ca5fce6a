namespace Polly.PriorityRouting;

/// <summary>
/// Records in DI that <c>AddPriorityRoutingHandler</c> was called for a client — or, with a <see langword="null"/>
/// name, for every client (<c>ConfigureHttpClientDefaults</c>) — so snapshots find the options the pipeline uses.
/// </summary>
internal sealed record PriorityRoutingRegistration(string? ClientName);
