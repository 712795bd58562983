namespace SharpTune.Classic;

/// <summary>Settings of the L-BFGS minimiser; the defaults are those scikit-learn passes to scipy's L-BFGS-B.</summary>
public sealed record LbfgsOptions
{
    /// <summary>Correction pairs kept (scipy's <c>maxcor</c>).</summary>
    public int History { get; init; } = 10;
    public int MaxIterations { get; init; } = 100;
    /// <summary>Stop when the largest gradient component is at most this (scipy's <c>gtol</c>/<c>pgtol</c>).</summary>
    public double GradientTolerance { get; init; } = 1e-5;
    /// <summary>Stop when the relative decrease of the objective is at most this (scipy's <c>ftol</c>; scikit-learn
    /// uses 64 machine epsilons).</summary>
    public double FunctionTolerance { get; init; } = 64 * Lbfgs.MachineEpsilon;
    /// <summary>Most function evaluations in one line search (scipy's <c>maxls</c>).</summary>
    public int MaxLineSearchSteps { get; init; } = 50;
}

/// <summary>The outcome of a minimisation.</summary>
public sealed record LbfgsResult(double[] Solution, double Value, int Iterations, int Evaluations, double GradientMaxNorm, bool Converged);

/// <summary>Limited-memory BFGS as scipy's L-BFGS-B runs it on unbounded problems, so that solvers built on it stop
/// where scikit-learn's stop: first step along -g of length 1/||g||, then the quasi-Newton step -H·g (two-loop
/// recursion, H₀ = s'y/y'y), the Moré–Thuente line search (ftol 1e-3, gtol 0.9, xtol 0.1), pairs skipped when
/// s'y ≤ ε·(-g'd·step), and the same two stopping tests.</summary>
public static class Lbfgs
{
    internal const double MachineEpsilon = 2.220446049250313e-16;

    /// <summary>Minimises <paramref name="objective"/>, which returns f(x) and writes ∇f(x) into its second argument.
    /// <paramref name="progress"/> receives (iteration, f, largest gradient component) after each iteration.</summary>
    public static LbfgsResult Minimize(Func<double[], double[], double> objective, double[] start, LbfgsOptions? options = null,
        Action<int, double, double>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new LbfgsOptions();
        var n = start.Length;
        var x = (double[])start.Clone();
        var g = new double[n];
        var f = objective(x, g);
        var evaluations = 1;
        var memory = new Memory(options.History, n);
        var direction = new double[n];
        var xNew = new double[n];
        var gNew = new double[n];
        var iteration = 0;
        var gradientMax = MaxAbs(g);
        var converged = gradientMax <= options.GradientTolerance;
        while (!converged && iteration < options.MaxIterations)
        {
            cancellation.ThrowIfCancellationRequested();
            memory.Direction(g, direction);
            var slope = Dot(g, direction);
            if (slope >= 0 && memory.Count > 0)
            {
                // Not a descent direction (rounding): forget the pairs and start again from steepest descent.
                memory.Clear();
                memory.Direction(g, direction);
                slope = Dot(g, direction);
            }
            if (slope >= 0)
                break;
            var firstStep = memory.Count == 0 && iteration == 0;
            var step = firstStep ? 1.0 / Math.Sqrt(Dot(direction, direction)) : 1.0;
            var search = new MoreThuente(f, slope, step, stepMax: 1e10);
            double fNew;
            var trials = 0;
            while (true)
            {
                for (var j = 0; j < n; j++)
                    xNew[j] = x[j] + step * direction[j];
                fNew = objective(xNew, gNew);
                evaluations++;
                trials++;
                if (!search.Next(fNew, Dot(gNew, direction), ref step) || trials >= options.MaxLineSearchSteps)
                    break;
            }
            iteration++;

            // The pair (s, y) is kept only when the curvature s'y is clearly positive, as L-BFGS-B does.
            var sy = (Dot(gNew, direction) - slope) * step;
            if (sy > MachineEpsilon * -slope * step)
                memory.Push(x, xNew, g, gNew, sy);
            var decrease = (f - fNew) / Math.Max(Math.Max(Math.Abs(f), Math.Abs(fNew)), 1.0);
            (x, xNew) = (xNew, x);
            (g, gNew) = (gNew, g);
            f = fNew;
            gradientMax = MaxAbs(g);
            progress?.Invoke(iteration, f, gradientMax);
            converged = gradientMax <= options.GradientTolerance || decrease <= options.FunctionTolerance;
        }
        return new LbfgsResult(x, f, iteration, evaluations, gradientMax, converged);
    }

    /// <summary>The last m correction pairs in a ring buffer.</summary>
    private sealed class Memory(int capacity, int n)
    {
        private readonly double[][] _s = new double[capacity][];
        private readonly double[][] _y = new double[capacity][];
        private readonly double[] _rho = new double[capacity];
        private readonly double[] _alpha = new double[capacity];
        private int _newest = -1;

        public int Count { get; private set; }

        public void Clear() => Count = 0;

        public void Push(double[] x, double[] xNew, double[] g, double[] gNew, double sy)
        {
            _newest = (_newest + 1) % capacity;
            var s = _s[_newest] ??= new double[n];
            var y = _y[_newest] ??= new double[n];
            for (var j = 0; j < n; j++)
            {
                s[j] = xNew[j] - x[j];
                y[j] = gNew[j] - g[j];
            }
            _rho[_newest] = 1.0 / sy;
            Count = Math.Min(Count + 1, capacity);
        }

        /// <summary>direction = -H·g by the two-loop recursion (-g without pairs).</summary>
        public void Direction(double[] g, double[] direction)
        {
            Array.Copy(g, direction, n);
            for (var k = 0; k < Count; k++)
            {
                var i = Slot(k);
                _alpha[i] = _rho[i] * Dot(_s[i], direction);
                Axpy(-_alpha[i], _y[i], direction);
            }
            if (Count > 0)
                Scale(direction, 1.0 / (_rho[_newest] * Dot(_y[_newest], _y[_newest])));
            for (var k = Count - 1; k >= 0; k--)
            {
                var i = Slot(k);
                var beta = _rho[i] * Dot(_y[i], direction);
                Axpy(_alpha[i] - beta, _s[i], direction);
            }
            Scale(direction, -1.0);
        }

        private int Slot(int age) => ((_newest - age) % capacity + capacity) % capacity;
    }

    /// <summary>MINPACK-2's dcsrch: a step satisfying the strong Wolfe conditions, by safeguarded cubic and quadratic
    /// interpolation within a bracket that shrinks (or an extrapolated interval while none is found).</summary>
    private sealed class MoreThuente
    {
        private const double Ftol = 1e-3, Gtol = 0.9, Xtol = 0.1, ExtrapolateLow = 1.1, ExtrapolateHigh = 4.0;
        private readonly double _fInit, _gInit, _gTest, _stepMax;
        private bool _bracketed;
        private int _stage = 1;
        private double _width, _width1;
        private double _stx, _fx, _gx, _sty, _fy, _gy, _stMin, _stMax;

        public MoreThuente(double f, double slope, double step, double stepMax)
        {
            (_fInit, _gInit, _gTest, _stepMax) = (f, slope, Ftol * slope, stepMax);
            _width = stepMax;
            _width1 = 2 * _width;
            (_stx, _fx, _gx) = (0, f, slope);
            (_sty, _fy, _gy) = (0, f, slope);
            _stMin = 0;
            _stMax = step + ExtrapolateHigh * step;
        }

        /// <summary>Takes f and the directional derivative at <paramref name="step"/>; returns false when the step is
        /// accepted (converged, or stopped by a safeguard), true with the next step to evaluate.</summary>
        public bool Next(double f, double g, ref double step)
        {
            var fTest = _fInit + step * _gTest;
            if (_stage == 1 && f <= fTest && g >= 0)
                _stage = 2;
            if (_bracketed && (step <= _stMin || step >= _stMax))
                return false;
            if (_bracketed && _stMax - _stMin <= Xtol * _stMax)
                return false;
            if (step == _stepMax && f <= fTest && g <= _gTest)
                return false;
            if (step == 0 && (f > fTest || g >= _gTest))
                return false;
            if (f <= fTest && Math.Abs(g) <= Gtol * -_gInit)
                return false;

            if (_stage == 1 && f <= _fx && f > fTest)
            {
                // Work on the modified function ψ(α) = f(α) - f(0) - ftol·α·f'(0) until a step with ψ ≤ 0 and ψ' ≥ 0 shows up.
                double fm = f - step * _gTest, fxm = _fx - _stx * _gTest, fym = _fy - _sty * _gTest;
                double gm = g - _gTest, gxm = _gx - _gTest, gym = _gy - _gTest;
                Step(ref _stx, ref fxm, ref gxm, ref _sty, ref fym, ref gym, ref step, fm, gm);
                (_fx, _fy, _gx, _gy) = (fxm + _stx * _gTest, fym + _sty * _gTest, gxm + _gTest, gym + _gTest);
            }
            else
            {
                Step(ref _stx, ref _fx, ref _gx, ref _sty, ref _fy, ref _gy, ref step, f, g);
            }
            if (_bracketed)
            {
                if (Math.Abs(_sty - _stx) >= 0.66 * _width1)
                    step = _stx + 0.5 * (_sty - _stx);
                _width1 = _width;
                _width = Math.Abs(_sty - _stx);
                _stMin = Math.Min(_stx, _sty);
                _stMax = Math.Max(_stx, _sty);
            }
            else
            {
                _stMin = step + ExtrapolateLow * (step - _stx);
                _stMax = step + ExtrapolateHigh * (step - _stx);
            }
            step = Math.Clamp(step, 0, _stepMax);
            if (_bracketed && (step <= _stMin || step >= _stMax || _stMax - _stMin <= Xtol * _stMax))
                step = _stx;
            return true;
        }

        /// <summary>MINPACK-2's dcstep: the next trial step and the updated bracket [stx, sty].</summary>
        private void Step(ref double stx, ref double fx, ref double dx, ref double sty, ref double fy, ref double dy,
            ref double stp, double fp, double dp)
        {
            var sgnd = dp * Math.Sign(dx);
            double stpf;
            if (fp > fx)
            {
                // Higher function value: the minimum is bracketed; cubic or the midpoint toward the quadratic step.
                var theta = 3 * (fx - fp) / (stp - stx) + dx + dp;
                var s = Max3(theta, dx, dp);
                var gamma = s * Math.Sqrt((theta / s) * (theta / s) - dx / s * (dp / s));
                if (stp < stx)
                    gamma = -gamma;
                var r = ((gamma - dx) + theta) / (((gamma - dx) + gamma) + dp);
                var stpc = stx + r * (stp - stx);
                var stpq = stx + dx / ((fx - fp) / (stp - stx) + dx) / 2 * (stp - stx);
                stpf = Math.Abs(stpc - stx) < Math.Abs(stpq - stx) ? stpc : stpc + (stpq - stpc) / 2;
                _bracketed = true;
            }
            else if (sgnd < 0)
            {
                // Derivatives of opposite sign: bracketed; the cubic or secant step farther from stp.
                var theta = 3 * (fx - fp) / (stp - stx) + dx + dp;
                var s = Max3(theta, dx, dp);
                var gamma = s * Math.Sqrt((theta / s) * (theta / s) - dx / s * (dp / s));
                if (stp > stx)
                    gamma = -gamma;
                var r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dx);
                var stpc = stp + r * (stx - stp);
                var stpq = stp + dp / (dp - dx) * (stx - stp);
                stpf = Math.Abs(stpc - stp) > Math.Abs(stpq - stp) ? stpc : stpq;
                _bracketed = true;
            }
            else if (Math.Abs(dp) < Math.Abs(dx))
            {
                // Same sign, derivative shrinking: the cubic step when it heads the right way, else the secant step.
                var theta = 3 * (fx - fp) / (stp - stx) + dx + dp;
                var s = Max3(theta, dx, dp);
                var gamma = s * Math.Sqrt(Math.Max(0, (theta / s) * (theta / s) - dx / s * (dp / s)));
                if (stp > stx)
                    gamma = -gamma;
                var r = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma);
                var stpc = r < 0 && gamma != 0 ? stp + r * (stx - stp) : stp > stx ? _stMax : _stMin;
                var stpq = stp + dp / (dp - dx) * (stx - stp);
                if (_bracketed)
                {
                    stpf = Math.Abs(stpc - stp) < Math.Abs(stpq - stp) ? stpc : stpq;
                    stpf = stp > stx ? Math.Min(stp + 0.66 * (sty - stp), stpf) : Math.Max(stp + 0.66 * (sty - stp), stpf);
                }
                else
                {
                    stpf = Math.Abs(stpc - stp) > Math.Abs(stpq - stp) ? stpc : stpq;
                    stpf = Math.Clamp(stpf, _stMin, _stMax);
                }
            }
            else if (_bracketed)
            {
                // Same sign, derivative not shrinking, bracketed: the cubic step toward sty.
                var theta = 3 * (fp - fy) / (sty - stp) + dy + dp;
                var s = Max3(theta, dy, dp);
                var gamma = s * Math.Sqrt((theta / s) * (theta / s) - dy / s * (dp / s));
                if (stp > sty)
                    gamma = -gamma;
                var r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dy);
                stpf = stp + r * (sty - stp);
            }
            else
            {
                stpf = stp > stx ? _stMax : _stMin;
            }

            if (fp > fx)
            {
                (sty, fy, dy) = (stp, fp, dp);
            }
            else
            {
                if (sgnd < 0)
                    (sty, fy, dy) = (stx, fx, dx);
                (stx, fx, dx) = (stp, fp, dp);
            }
            stp = stpf;
        }

        private static double Max3(double a, double b, double c) => Math.Max(Math.Abs(a), Math.Max(Math.Abs(b), Math.Abs(c)));
    }

    internal static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        var sum = 0.0;
        for (var i = 0; i < a.Length; i++)
            sum += a[i] * b[i];
        return sum;
    }

    private static void Axpy(double a, ReadOnlySpan<double> x, Span<double> y)
    {
        for (var i = 0; i < y.Length; i++)
            y[i] += a * x[i];
    }

    private static void Scale(Span<double> x, double a)
    {
        for (var i = 0; i < x.Length; i++)
            x[i] *= a;
    }

    private static double MaxAbs(ReadOnlySpan<double> x)
    {
        var max = 0.0;
        foreach (var v in x)
            max = Math.Max(max, Math.Abs(v));
        return max;
    }
}
