using System.ComponentModel.DataAnnotations;

namespace Polly.PriorityRouting;

/// <summary>
/// Outlier ejection: a backend that keeps failing with server errors, transport errors or timeouts is taken out of
/// rotation for a time that grows with each repeated ejection, and comes back through a single probe request.
/// </summary>
/// <remarks>
/// Throttling (429 and rate-limit signals) is not an outlier failure: it keeps using the service's own reset time.
/// Failure counts and probes are tracked per process (shared by every pipeline that uses the same store); the ejection
/// deadline itself goes through the store, so a distributed store shares it with other replicas.
/// </remarks>
public sealed class OutlierEjectionOptions
{
    /// <summary>Gets or sets a value indicating whether outlier ejection is on.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool Enabled { get; set; } = true;

    /// <summary>Gets or sets how many failures in a row (server errors, transport errors, timeouts) eject a backend.</summary>
    /// <value>The default value is 5. It must be between 1 and 1000.</value>
    [Range(1, 1000)]
    public int ConsecutiveFailures { get; set; } = PriorityRoutingConstants.DefaultConsecutiveFailures;

    /// <summary>
    /// Gets or sets the duration of a first ejection. The n-th ejection in a row lasts n times as long; the count
    /// decays by one for each base ejection time the backend stays healthy.
    /// </summary>
    /// <value>The default value is 30 seconds. It must be positive.</value>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan BaseEjectionTime { get; set; } = PriorityRoutingConstants.DefaultBaseEjectionTime;

    /// <summary>Gets or sets the upper bound of an ejection.</summary>
    /// <value>The default value is 5 minutes. It must not be less than <see cref="BaseEjectionTime"/>.</value>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan MaxEjectionTime { get; set; } = PriorityRoutingConstants.DefaultMaxEjectionTime;
}
