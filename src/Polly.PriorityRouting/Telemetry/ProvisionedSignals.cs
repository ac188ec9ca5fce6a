using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net.Http.Headers;

namespace Polly.PriorityRouting;

/// <summary>
/// What Azure OpenAI provisioned (PTU) deployments say about themselves on each answer, turned into metrics:
/// <c>x-ms-spillover-from-deployment</c> (the answer was served by the standard deployment the PTU spilled over to) and
/// <c>azure-openai-deployment-utilization</c> (the PTU's utilisation, in percent). Routing does not act on either:
/// spillover happens inside the service, after the strategy chose the backend.
/// </summary>
internal static class ProvisionedSignals
{
    public const string SpilloverFromHeader = "x-ms-spillover-from-deployment";

    public const string UtilizationHeader = "azure-openai-deployment-utilization";

    public static void Record(HttpResponseHeaders headers, Counter<long> spillovers, Histogram<double> utilization, in TagList tags)
    {
        if (spillovers.Enabled && headers.NonValidated.Contains(SpilloverFromHeader))
        {
            spillovers.Add(1, tags);
        }

        if (utilization.Enabled && headers.NonValidated.TryGetValues(UtilizationHeader, out var values))
        {
            foreach (var value in values)
            {
                if (double.TryParse(value.AsSpan().Trim().TrimEnd('%'), NumberStyles.Float, CultureInfo.InvariantCulture, out var percent) &&
                    double.IsFinite(percent))
                {
                    utilization.Record(percent, tags);
                }

                break;
            }
        }
    }
}
