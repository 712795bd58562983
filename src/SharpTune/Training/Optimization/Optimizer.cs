using System.Globalization;
using SharpTune.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Training.Optimization;

/// <summary>
/// Base of SharpTune's optimizers: parameter groups with per-group learning rates (set by the scheduler), gradient
/// clipping exactly like <c>torch.nn.utils.clip_grad_norm_</c>, fp32 master weights for parameters stored in a lower
/// precision (bf16/fp16 training), and state saving for checkpoints. Written here rather than using TorchSharp's
/// optimizers so that the arithmetic follows torch.optim step by step and the state is a plain safetensors file.
/// </summary>
public abstract class Optimizer : IDisposable
{
    private readonly Tensor?[] _masters;

    protected Optimizer(IReadOnlyList<ParameterGroup> groups)
    {
        Groups = groups;
        LearningRates = groups.Select(g => g.LearningRate).ToArray();
        Entries = groups.SelectMany((g, gi) => g.Parameters.Select(p => new Entry(p.Name, p.Parameter, gi))).ToList();
        var duplicate = Entries.GroupBy(e => e.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"parameter '{duplicate.Key}' appears in more than one parameter group");
        _masters = new Tensor?[Entries.Count];
        using var noGrad = no_grad();
        for (var i = 0; i < Entries.Count; i++)
            if (Entries[i].Parameter.dtype != ScalarType.Float32 && Entries[i].Parameter.is_floating_point())
                _masters[i] = Entries[i].Parameter.detach().to(ScalarType.Float32).clone().DetachFromDisposeScope();
    }

    protected sealed record Entry(string Name, Parameter Parameter, int Group);

    public IReadOnlyList<ParameterGroup> Groups { get; }

    /// <summary>The learning rate each group uses at the next step (the scheduler writes it).</summary>
    public double[] LearningRates { get; }

    protected IReadOnlyList<Entry> Entries { get; }

    /// <summary>Number of optimizer steps taken.</summary>
    public long StepCount { get; private set; }

    /// <summary>True when some parameters are trained through fp32 master copies.</summary>
    public bool UsesMasterWeights => _masters.Any(m => m is not null);

    /// <summary>The fp32 weights the optimizer updates (the master copy for low-precision parameters).</summary>
    public Tensor WeightOf(int index) => _masters[index] ?? Entries[index].Parameter;

    /// <summary>Every parameter's name with its fp32 weight (master copy where there is one).</summary>
    public IEnumerable<(string Name, Tensor Weight)> Weights() => Entries.Select((e, i) => (e.Name, WeightOf(i)));

    /// <summary>Clips the gradients to <paramref name="maxGradNorm"/> (when given) and updates the parameters.
    /// Returns the total L2 norm of the gradients before clipping. With a loss <paramref name="scaler"/> (fp16) the
    /// gradients are unscaled first, and a step whose gradients overflowed is skipped (see <see cref="GradScaler"/>).</summary>
    public double Step(double? maxGradNorm, GradScaler? scaler = null)
    {
        using var scope = NewDisposeScope();
        var gradients = new List<(int Index, Tensor Gradient)>();
        for (var i = 0; i < Entries.Count; i++)
        {
            var grad = Entries[i].Parameter.grad;
            if (grad is null)
                continue;
            gradients.Add((i, grad.dtype == ScalarType.Float32 ? grad : grad.to(ScalarType.Float32)));
        }
        var fp32Gradients = gradients.Select(g => g.Gradient).ToList();
        var overflow = scaler?.Unscale(fp32Gradients) ?? false;
        var norm = ClipGradients(fp32Gradients, overflow ? null : maxGradNorm);
        scaler?.Update(overflow);
        if (overflow)
            return norm;
        using (no_grad())
        {
            foreach (var (index, gradient) in gradients)
            {
                var entry = Entries[index];
                Update(index, WeightOf(index), gradient, LearningRates[entry.Group], Groups[entry.Group].WeightDecay);
                if (_masters[index] is { } master)
                    entry.Parameter.copy_(master);
            }
        }
        StepCount++;
        return norm;
    }

    /// <summary>torch.nn.utils.clip_grad_norm_: total norm of the per-tensor norms; every gradient is multiplied by
    /// min(1, max / (norm + 1e-6)). Returns the pre-clip norm (NaN/inf propagate, as in torch).</summary>
    public static double ClipGradients(IReadOnlyList<Tensor> gradients, double? maxNorm)
    {
        if (gradients.Count == 0)
            return 0.0;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var norms = gradients.Select(g => linalg.vector_norm(g, 2)).ToArray();
        var total = linalg.vector_norm(stack(norms), 2);
        if (maxNorm is { } max)
        {
            var coefficient = (max / (total + 1e-6)).clamp_max(1.0);
            foreach (var gradient in gradients)
                gradient.mul_(coefficient);
        }
        return total.item<float>();
    }

    public void ZeroGrad()
    {
        foreach (var entry in Entries)
            entry.Parameter.grad = null;
    }

    /// <summary>One update of one parameter (fp32 weight and gradient, under no_grad).</summary>
    protected abstract void Update(int index, Tensor weight, Tensor gradient, double learningRate, double weightDecay);

    /// <summary>Per-parameter state tensors by suffix (e.g. "exp_avg"), for saving.</summary>
    protected abstract IEnumerable<(string Suffix, Tensor Tensor)> StateOf(int index);

    /// <summary>Restores one state tensor read from a checkpoint.</summary>
    protected abstract void RestoreState(int index, string suffix, Tensor value);

    /// <summary>Writes the optimizer state (moments, master weights, step counts) atomically as safetensors.</summary>
    public void Save(string path)
    {
        using var scope = NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        for (var i = 0; i < Entries.Count; i++)
        {
            foreach (var (suffix, tensor) in StateOf(i))
                tensors.Add(new($"{Entries[i].Name}::{suffix}", tensor.detach().cpu()));
            if (_masters[i] is { } master)
                tensors.Add(new($"{Entries[i].Name}::master", master.detach().cpu()));
        }
        var metadata = new Dictionary<string, string>
        {
            ["optimizer"] = GetType().Name,
            ["step_count"] = StepCount.ToString(CultureInfo.InvariantCulture),
        };
        SafeTensorsWriter.Save(path, tensors, metadata);
    }

    /// <summary>Loads a state written by <see cref="Save"/> for the same parameters.</summary>
    public void Load(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        if (file.Metadata.TryGetValue("optimizer", out var kind) && kind != GetType().Name)
            throw new InvalidDataException($"{path}: optimizer state of {kind}, but this run uses {GetType().Name}");
        var byName = Entries.Select((e, i) => (e.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
        using (no_grad())
        {
            foreach (var key in file.Names)
            {
                var split = key.LastIndexOf("::", StringComparison.Ordinal);
                if (split < 0 || !byName.TryGetValue(key[..split], out var index))
                    throw new InvalidDataException($"{path}: state '{key}' belongs to no parameter of this model");
                var suffix = key[(split + 2)..];
                using var value = file.Load(key);
                var device = Entries[index].Parameter.device;
                if (suffix == "master")
                {
                    if (_masters[index] is not { } master)
                        throw new InvalidDataException($"{path}: '{key}' holds master weights, but the parameter is fp32 in this run");
                    master.copy_(value);
                    Entries[index].Parameter.copy_(master);
                }
                else
                    RestoreState(index, suffix, value.to(device));
            }
        }
        StepCount = long.Parse(file.Metadata.GetValueOrDefault("step_count", "0"), CultureInfo.InvariantCulture);
    }

    public virtual void Dispose()
    {
        foreach (var master in _masters)
            master?.Dispose();
        GC.SuppressFinalize(this);
    }
}
