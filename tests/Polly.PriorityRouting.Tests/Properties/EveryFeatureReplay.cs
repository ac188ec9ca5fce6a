using System.Globalization;
using System.Text.RegularExpressions;

namespace Polly.PriorityRouting.Tests.Properties;

/// <summary>Reads back a sequence as <see cref="EveryFeatureProperties"/> prints it, to replay a failure.</summary>
internal static partial class EveryFeatureReplay
{
    public static (EveryFeatureSetup Setup, Step[] Steps) Parse(string text, string[] deployments)
    {
        var lines = text.Split('\n').Select(l => l.Trim()).ToList();
        var setupLine = lines.First(l => l.StartsWith("backends [", StringComparison.Ordinal));
        var setupMatch = SetupPattern().Match(setupLine);
        var backends = setupMatch.Groups["backends"].Value.Split("; ").Select(ParseBackend).ToArray();
        var setup = new EveryFeatureSetup(
            backends,
            Seconds(setupMatch.Groups["cooldown"].Value),
            int.Parse(setupMatch.Groups["failures"].Value, CultureInfo.InvariantCulture),
            Seconds(setupMatch.Groups["base"].Value),
            Seconds(setupMatch.Groups["max"].Value),
            setupMatch.Groups["wait"].Value == "off" ? null : Seconds(setupMatch.Groups["wait"].Value),
            int.Parse(setupMatch.Groups["seed"].Value, CultureInfo.InvariantCulture));

        var steps = new List<Step>();
        foreach (var line in lines.Where(l => l.StartsWith("step ", StringComparison.Ordinal)))
        {
            var what = line[(line.IndexOf(": ", StringComparison.Ordinal) + 2)..];
            if (what.StartsWith("wait ", StringComparison.Ordinal))
            {
                steps.Add(new WaitStep(Seconds(what[5..])));
            }
            else if (what.StartsWith("the oldest waiter cancels", StringComparison.Ordinal))
            {
                steps.Add(new CancelStep());
            }
            else
            {
                steps.Add(ParseRequest(what, backends, deployments));
            }
        }

        return (setup, [.. steps]);
    }

    private static RequestStep ParseRequest(string text, EveryFeatureBackend[] backends, string[] deployments)
    {
        var match = RequestPattern().Match(text);
        var hintsText = match.Groups["hints"].Value;
        HintSpec? hints = null;
        if (hintsText != "no hint")
        {
            int only = 0, excluded = 0, max = 0;
            var noFailover = false;
            foreach (var part in hintsText.Split(", "))
            {
                if (part.StartsWith("only ", StringComparison.Ordinal))
                {
                    only = Mask(part[5..]);
                }
                else if (part.StartsWith("never ", StringComparison.Ordinal))
                {
                    excluded = Mask(part[6..]);
                }
                else if (part.StartsWith("max p", StringComparison.Ordinal))
                {
                    max = int.Parse(part[5..], CultureInfo.InvariantCulture);
                }
                else if (part == "no failover")
                {
                    noFailover = true;
                }
            }

            hints = new HintSpec(only, excluded, max, noFailover, backends);
        }

        var acts = match.Groups["acts"].Value.Split(" | ").Select(a => ParseAct(a[(a.IndexOf(' ', StringComparison.Ordinal) + 1)..])).ToArray();
        return new RequestStep(
            Enum.Parse<Shape>(match.Groups["shape"].Value),
            Array.IndexOf(deployments, match.Groups["deployment"].Value),
            int.Parse(match.Groups["cost"].Value, CultureInfo.InvariantCulture),
            int.Parse(match.Groups["ref"].Value, CultureInfo.InvariantCulture),
            Enum.Parse<Spelling>(match.Groups["spelling"].Value),
            match.Groups["key"].Success ? Enum.Parse<KeySource>(match.Groups["key"].Value) : KeySource.None,
            match.Groups["keyIndex"].Success ? int.Parse(match.Groups["keyIndex"].Value, CultureInfo.InvariantCulture) : 0,
            hints,
            acts,
            match.Groups["zero"].Success);
    }

    private static Act ParseAct(string text) => text switch
    {
        "200" => new Act(ActKind.Ok, 0),
        "200 aborted" => new Act(ActKind.Aborted, 0),
        "500" => new Act(ActKind.ServerError, 0),
        "503" => new Act(ActKind.ServerError, 1),
        "reset" => new Act(ActKind.TransportError, 0),
        "400" => new Act(ActKind.BadRequest, 0),
        _ => new Act(ActKind.Throttle, int.Parse(text[4..^2], CultureInfo.InvariantCulture)),
    };

    private static EveryFeatureBackend ParseBackend(string text)
    {
        var match = BackendPattern().Match(text);
        return new EveryFeatureBackend(
            match.Groups["name"].Value,
            int.Parse(match.Groups["priority"].Value, CultureInfo.InvariantCulture),
            int.Parse(match.Groups["weight"].Value, CultureInfo.InvariantCulture),
            match.Groups["limit"].Success,
            match.Groups["limit"].Success ? long.Parse(match.Groups["limit"].Value, CultureInfo.InvariantCulture) : 1000,
            match.Groups["window"].Success ? Seconds(match.Groups["window"].Value) : TimeSpan.FromSeconds(1));
    }

    private static int Mask(string names)
        => names.Split('+').Aggregate(0, (mask, name) => mask | (1 << int.Parse(name[1..], CultureInfo.InvariantCulture)));

    private static TimeSpan Seconds(string text)
        => text == "s" ? TimeSpan.Zero : TimeSpan.FromSeconds(double.Parse(text.TrimEnd('s'), CultureInfo.InvariantCulture));

    [GeneratedRegex(@"^backends \[(?<backends>[^\]]*)\], cooldown (?<cooldown>[0-9.]*s), ejection after (?<failures>\d+) \((?<base>[0-9.]+s)\.\.(?<max>[0-9.]+s)\), MaxQueueWait (?<wait>[0-9.]+s|off), seed (?<seed>-?\d+)")]
    private static partial Regex SetupPattern();

    [GeneratedRegex(@"^(?<name>b\d+) p(?<priority>\d+) w(?<weight>\d+)( budget (?<limit>\d+)/(?<window>[0-9.]+s))?$")]
    private static partial Regex BackendPattern();

    [GeneratedRegex(@"^request #\d+: (?<shape>\w+) (?<deployment>[\w.-]+) (?<spelling>\w+) ref (?<ref>\d+) cost (?<cost>\d+)(?<zero> \(read with zero-byte reads\))?(, key (?<key>\w+) (?<keyIndex>\d+))?, (?<hints>.*?): (?<acts>b0 .*)$")]
    private static partial Regex RequestPattern();
}
