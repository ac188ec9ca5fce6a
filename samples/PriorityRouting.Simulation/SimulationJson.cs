using System.Text.Json;

namespace PriorityRouting.Simulation;

/// <summary>
/// The results as one JSON array, one object per scenario × replicas × load × router, for scripts. A number that does
/// not exist (no retries, nothing spilled, no request classes outside the <c>classes</c> scenario) is <c>null</c>.
/// </summary>
public static class SimulationJson
{
    public static string Format(IReadOnlyList<RunResult> results)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartArray();
            foreach (var r in results)
            {
                writer.WriteStartObject();
                writer.WriteString("router", r.Router);
                writer.WriteString("scenario", r.Scenario);
                writer.WriteNumber("replicas", r.Replicas);
                writer.WriteNumber("load", r.LoadFactor);
                Number(writer, "servedShare", r.ServedFraction);
                Number(writer, "idealServedShare", r.IdealServedShare);
                Number(writer, "idealAnyOrderServedShare", r.IdealAnyOrderServedShare);
                Number(writer, "backend429PerSuccess", r.ThrottledPerSuccess);
                Number(writer, "clientExhaustedPerRequest", r.ClientVisibleRejectionsPerRequest);
                Number(writer, "clientExhaustedFloor", r.ClientVisibleRejectionsFloor);
                Number(writer, "keptPromiseRate", r.KeptPromiseRate);
                Number(writer, "keptPromiseBound", r.KeptPromiseBound);
                Number(writer, "p50TimeToSuccessMs", r.P50TimeToSuccessMs);
                Number(writer, "p99TimeToSuccessMs", r.P99TimeToSuccessMs);
                Number(writer, "priority1Utilisation", r.PriorityOneUtilisationWhileSpilling);
                writer.WriteNumber("newRequests", r.NewRequests);
                writer.WriteNumber("successes", r.Successes);
                writer.WriteNumber("retries", r.Retries);
                writer.WriteNumber("retriesServed", r.RetriesServed);
                Number(writer, "foregroundServedShare", r.ForegroundServedShare);
                Number(writer, "backgroundServedShare", r.BackgroundServedShare);
                Number(writer, "foregroundP99TimeToSuccessMs", r.ForegroundP99TimeToSuccessMs);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void Number(Utf8JsonWriter writer, string name, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumber(name, Math.Round(value, 6));
        }
        else
        {
            writer.WriteNull(name);
        }
    }
}
