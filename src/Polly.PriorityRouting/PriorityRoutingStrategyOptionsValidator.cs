using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace Polly.PriorityRouting;

/// <summary>
/// The cross-field rules of <see cref="PriorityRoutingStrategyOptions"/>, with error messages that name the field.
/// </summary>
/// <remarks>
/// Used when the strategy is added to a pipeline and by the options validation of the DI registration, which passes a
/// prefix such as <c>Routing.</c> so that messages name the configuration path.
/// </remarks>
internal static partial class PriorityRoutingStrategyOptionsValidator
{
    private static readonly TimeSpan MaxCooldownLimit = TimeSpan.FromDays(1);

    public static List<string> Validate(PriorityRoutingStrategyOptions options, string prefix = "")
    {
        var errors = new List<string>();
        ValidateBackends(options.Backends, options.TokenBudgets, prefix, errors);

        // The upper bounds are the [Range] of the properties, which Polly enforces when it builds the pipeline: checked
        // here too, so that a host validating on start fails at start rather than at the first request.
        if (options.DefaultCooldown < TimeSpan.Zero)
        {
            errors.Add(Invariant($"{prefix}DefaultCooldown must not be negative, but was {options.DefaultCooldown}."));
        }
        else if (options.DefaultCooldown > MaxCooldownLimit)
        {
            errors.Add(Invariant($"{prefix}DefaultCooldown must not exceed one day, but was {options.DefaultCooldown}."));
        }

        if (options.MaxCooldown < TimeSpan.Zero)
        {
            errors.Add(Invariant($"{prefix}MaxCooldown must not be negative, but was {options.MaxCooldown}."));
        }
        else if (options.MaxCooldown > MaxCooldownLimit)
        {
            errors.Add(Invariant($"{prefix}MaxCooldown must not exceed one day, but was {options.MaxCooldown}."));
        }
        else if (options.DefaultCooldown > options.MaxCooldown)
        {
            errors.Add(Invariant(
                $"{prefix}DefaultCooldown ({options.DefaultCooldown}) must not exceed {prefix}MaxCooldown ({options.MaxCooldown})."));
        }

        if (options.MaxAttempts < PriorityRoutingConstants.MinAttempts)
        {
            errors.Add(Invariant($"{prefix}MaxAttempts must be at least 1 when set, but was {options.MaxAttempts}."));
        }

        ValidateOutlierEjection(options.OutlierEjection, prefix, errors);
        ValidateStreaming(options, prefix, errors);
        ValidateQueueWait(options, prefix, errors);
        ValidateBackgroundHeadroom(options, prefix, errors);
        ValidateAffinity(options.Affinity, prefix, errors);
        ValidateFallbacks(options.ModelFallbacks, options.Backends, $"{prefix}{nameof(options.ModelFallbacks)}", errors);
        ValidateFallbacks(options.ContextWindowFallbacks, options.Backends, $"{prefix}{nameof(options.ContextWindowFallbacks)}", errors);

        if (options.ShouldHandle is null)
        {
            errors.Add($"{prefix}ShouldHandle is required.");
        }

        return errors;
    }

    public static void ThrowIfInvalid(PriorityRoutingStrategyOptions options)
    {
        var errors = Validate(options);
        if (errors.Count > 0)
        {
            throw new ValidationException(
                $"The '{nameof(PriorityRoutingStrategyOptions)}' are invalid.{Environment.NewLine}{Environment.NewLine}" +
                $"Validation Errors:{Environment.NewLine}{string.Join(Environment.NewLine, errors)}");
        }
    }

    private static void ValidateBackends(IList<PriorityBackend>? backends, bool tokenBudgets, string prefix, List<string> errors)
    {
        if (backends is null || backends.Count == 0)
        {
            errors.Add($"{prefix}Backends must contain at least one backend.");
            return;
        }

        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < backends.Count; i++)
        {
            var path = Invariant($"{prefix}Backends[{i}]");
            var backend = backends[i];
            if (backend is null)
            {
                errors.Add($"{path} must not be null.");
                continue;
            }

            ValidateAddress(backend.BaseAddress, path, errors);

            if (backend.Priority < PriorityRoutingConstants.MinPriority)
            {
                errors.Add(Invariant($"{path}.Priority must be at least 1, but was {backend.Priority}."));
            }

            if (backend.Weight is < PriorityRoutingConstants.MinWeight or > PriorityRoutingConstants.MaxWeight)
            {
                errors.Add(Invariant($"{path}.Weight must be between 1 and 1000, but was {backend.Weight}."));
            }

            if (backend.GetEffectiveName() is { } name)
            {
                if (names.TryGetValue(name, out var first))
                {
                    errors.Add(Invariant(
                        $"{path}.Name '{name}' is already used by {prefix}Backends[{first}]; backend names must be unique."));
                }
                else
                {
                    names.Add(name, i);
                }
            }

            ValidateHeaders(backend.Headers, path, errors);
            ValidateModels(backend.Models, path, errors);
            ValidateLimits(backend, path, tokenBudgets, errors);
        }

        if (backends.All(backend => backend is { Drain: true }))
        {
            // Every new request would get a 503 whose Retry-After means nothing: a drained backend never returns by time.
            errors.Add($"{prefix}Backends are all drained (Drain = true); at least one backend must take new requests.");
        }
    }

    private static void ValidateLimits(PriorityBackend backend, string path, bool tokenBudgets, List<string> errors)
    {
        ValidateAtLeastOne(backend.TokensPerMinute, path, nameof(PriorityBackend.TokensPerMinute), errors);
        ValidateAtLeastOne(backend.RequestsPerMinute, path, nameof(PriorityBackend.RequestsPerMinute), errors);
        ValidateAtLeastOne(backend.MaxConcurrentRequests, path, nameof(PriorityBackend.MaxConcurrentRequests), errors);
        if (!tokenBudgets && (backend.TokensPerMinute is not null || backend.RequestsPerMinute is not null))
        {
            var field = backend.TokensPerMinute is not null ? nameof(PriorityBackend.TokensPerMinute) : nameof(PriorityBackend.RequestsPerMinute);
            errors.Add($"{path}.{field} is a declared budget: it needs TokenBudgets on.");
        }
    }

    private static void ValidateAtLeastOne(int? value, string path, string field, List<string> errors)
    {
        if (value is < 1)
        {
            errors.Add(Invariant($"{path}.{field} must be at least 1 when set, but was {value}."));
        }
    }

    private static void ValidateOutlierEjection(OutlierEjectionOptions? ejection, string prefix, List<string> errors)
    {
        if (ejection is null)
        {
            errors.Add($"{prefix}OutlierEjection is required.");
            return;
        }

        if (ejection.ConsecutiveFailures is < 1 or > 1000)
        {
            errors.Add(Invariant($"{prefix}OutlierEjection.ConsecutiveFailures must be between 1 and 1000, but was {ejection.ConsecutiveFailures}."));
        }

        if (ejection.BaseEjectionTime <= TimeSpan.Zero)
        {
            errors.Add(Invariant($"{prefix}OutlierEjection.BaseEjectionTime must be positive, but was {ejection.BaseEjectionTime}."));
        }
        else if (ejection.MaxEjectionTime < ejection.BaseEjectionTime)
        {
            errors.Add(Invariant(
                $"{prefix}OutlierEjection.MaxEjectionTime ({ejection.MaxEjectionTime}) must not be less than {prefix}OutlierEjection.BaseEjectionTime ({ejection.BaseEjectionTime})."));
        }
    }

    private static void ValidateAffinity(AffinityOptions? affinity, string prefix, List<string> errors)
    {
        if (affinity is null)
        {
            errors.Add($"{prefix}Affinity is required.");
            return;
        }

        if (affinity.IdExtractor is null)
        {
            errors.Add($"{prefix}Affinity.IdExtractor is required.");
        }

        ValidateLifetime(affinity.ResponseLifetime, AffinityOptions.MaxLifetime, $"{prefix}Affinity.ResponseLifetime", errors);
        ValidateLifetime(affinity.ResourceLifetime, AffinityOptions.MaxLifetime, $"{prefix}Affinity.ResourceLifetime", errors);
        ValidateLifetime(affinity.StickyLifetime, AffinityOptions.MaxStickyLifetime, $"{prefix}Affinity.StickyLifetime", errors);
    }

    private static void ValidateLifetime(TimeSpan lifetime, TimeSpan max, string path, List<string> errors)
    {
        if (lifetime < AffinityOptions.MinLifetime || lifetime > max)
        {
            errors.Add(Invariant($"{path} must be between {AffinityOptions.MinLifetime} and {max}, but was {lifetime}."));
        }
    }

    private static void ValidateStreaming(PriorityRoutingStrategyOptions options, string prefix, List<string> errors)
    {
        if (options.FirstByteTimeout is { } firstByte && (firstByte < TimeSpan.FromMilliseconds(1) || firstByte > TimeSpan.FromDays(1)))
        {
            errors.Add(Invariant($"{prefix}FirstByteTimeout must be between 1 ms and one day when set, but was {firstByte}."));
        }

        if (options.StreamStallTimeout is { } stall && (stall < TimeSpan.FromMilliseconds(1) || stall > TimeSpan.FromDays(1)))
        {
            errors.Add(Invariant($"{prefix}StreamStallTimeout must be between 1 ms and one day when set, but was {stall}."));
        }

        if (!Enum.IsDefined(options.SelectionMode))
        {
            errors.Add(Invariant($"{prefix}SelectionMode must be WeightedRandom or LatencyAware, but was {(int)options.SelectionMode}."));
        }
    }

    private static void ValidateBackgroundHeadroom(PriorityRoutingStrategyOptions options, string prefix, List<string> errors)
    {
        // Written as a negation so that NaN fails too.
        if (!(options.BackgroundHeadroom >= 0 && options.BackgroundHeadroom < 1))
        {
            errors.Add(Invariant($"{prefix}BackgroundHeadroom must be at least 0 and less than 1 (a share of each budget), but was {options.BackgroundHeadroom}."));
        }
    }

    private static void ValidateQueueWait(PriorityRoutingStrategyOptions options, string prefix, List<string> errors)
    {
        if (options.MaxQueueWait is not { } wait)
        {
            return;
        }

        if (wait < TimeSpan.FromMilliseconds(1) || wait > TimeSpan.FromDays(1))
        {
            errors.Add(Invariant($"{prefix}MaxQueueWait must be between 1 ms and one day when set, but was {wait}."));
        }
        else if (!options.TokenBudgets)
        {
            errors.Add($"{prefix}MaxQueueWait waits for room the token budget view promises: it requires {prefix}TokenBudgets to be true.");
        }
    }

    private static void ValidateAddress(Uri? address, string path, List<string> errors)
    {
        if (address is null)
        {
            errors.Add($"{path}.BaseAddress is required.");
        }
        else if (!address.IsAbsoluteUri)
        {
            errors.Add($"{path}.BaseAddress must be an absolute URI, but was relative.");
        }
        else if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
        {
            errors.Add($"{path}.BaseAddress must use the http or https scheme, but used '{address.Scheme}'.");
        }
    }

    private static void ValidateHeaders(IDictionary<string, string> headers, string path, List<string> errors)
    {
        foreach (var header in headers)
        {
            // Values are secrets: messages name the header, never its value.
            if (!IsToken(header.Key))
            {
                errors.Add($"{path}.Headers has an invalid header name '{header.Key}'.");
            }
            else if (header.Value is null || header.Value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
            {
                errors.Add($"{path}.Headers['{header.Key}'] must be a single-line value.");
            }
        }
    }

    private static bool IsToken(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return false;
        }

        foreach (var c in name)
        {
            var valid = c is > ' ' and < (char)127 && "\"(),/:;<=>?@[\\]{}".IndexOf(c, StringComparison.Ordinal) < 0;
            if (!valid)
            {
                return false;
            }
        }

        return true;
    }

    private static string Invariant(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}
