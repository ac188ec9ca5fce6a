using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Rejects options that would make the store write where it cannot read back, or connect nowhere.
/// </summary>
internal sealed class PriorityRoutingRedisStoreOptionsValidator : IValidateOptions<PriorityRoutingRedisStoreOptions>
{
    private static readonly char[] GlobCharacters = ['*', '?', '[', ']', '\\'];
    private static readonly TimeSpan MaxMaxUnavailability = TimeSpan.FromDays(1);
    private static readonly TimeSpan MaxBudgetPublishInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaxAffinityTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan MaxFirstLoadTimeout = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan MaxReservationTimeout = TimeSpan.FromSeconds(1);

    public ValidateOptionsResult Validate(string? name, PriorityRoutingRedisStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();

        if (string.IsNullOrWhiteSpace(options.KeyPrefix))
        {
            failures.Add($"{nameof(options.KeyPrefix)} must not be empty: without a prefix the store would scan and expire other applications' keys.");
        }
        else if (options.KeyPrefix.IndexOfAny(GlobCharacters) >= 0)
        {
            failures.Add($"{nameof(options.KeyPrefix)} must not contain the glob characters * ? [ ] \\, because it is the pattern of the SCAN that loads the state.");
        }

        if (options.ChannelName is not null && string.IsNullOrWhiteSpace(options.ChannelName))
        {
            failures.Add($"{nameof(options.ChannelName)} must be null (derived from the key prefix) or a non-empty channel name.");
        }

        if (options.MaxUnavailability <= TimeSpan.Zero || options.MaxUnavailability > MaxMaxUnavailability)
        {
            failures.Add($"{nameof(options.MaxUnavailability)} must be more than zero and at most one day (it was {options.MaxUnavailability}).");
        }

        if (options.BudgetPublishInterval < TimeSpan.Zero || options.BudgetPublishInterval > MaxBudgetPublishInterval)
        {
            failures.Add($"{nameof(options.BudgetPublishInterval)} must be between zero and 10 seconds (it was {options.BudgetPublishInterval}).");
        }

        if (options.AffinityTimeout <= TimeSpan.Zero || options.AffinityTimeout > MaxAffinityTimeout)
        {
            failures.Add($"{nameof(options.AffinityTimeout)} must be more than zero and at most 30 seconds (it was {options.AffinityTimeout}).");
        }

        if (options.FirstLoadTimeout < TimeSpan.Zero || options.FirstLoadTimeout > MaxFirstLoadTimeout)
        {
            failures.Add($"{nameof(options.FirstLoadTimeout)} must be between zero and one minute (it was {options.FirstLoadTimeout}).");
        }

        if (options.ReservationTimeout <= TimeSpan.Zero || options.ReservationTimeout > MaxReservationTimeout)
        {
            failures.Add($"{nameof(options.ReservationTimeout)} must be more than zero and at most 1 second (it was {options.ReservationTimeout}): it is added to every attempt while Redis is slow.");
        }

        if (options.Configuration is not null && !IsValidConfiguration(options.Configuration))
        {
            // The configuration string may hold a password: the message never repeats it.
            failures.Add($"{nameof(options.Configuration)} must be a StackExchange.Redis configuration string naming at least one endpoint, or null to use the IConnectionMultiplexer of the service collection.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static bool IsValidConfiguration(string configuration)
    {
        if (string.IsNullOrWhiteSpace(configuration))
        {
            return false;
        }

        try
        {
            return ConfigurationOptions.Parse(configuration).EndPoints.Count > 0;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
