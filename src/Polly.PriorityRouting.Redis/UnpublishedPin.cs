namespace Polly.PriorityRouting.Redis;

/// <summary>A pin waiting for Redis: the backend that holds the id, and when the pin expires on this replica's clock.</summary>
/// <param name="Backend">The backend's identity.</param>
/// <param name="ExpiresAt">When the pin expires.</param>
internal readonly record struct UnpublishedPin(string Backend, DateTimeOffset ExpiresAt);
